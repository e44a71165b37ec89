import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isAbsolute, join } from 'node:path';
import protobuf from 'protobufjs';
import type { SpanValue } from '../../adapters/trace/spans.js';
import { attributeRecord, type OtlpKeyValue, type OtlpSpan } from './otlp.js';

/** Where Debian's opentelemetry-proto puts the official .proto files (scripts/setup.sh --tests installs it). */
export const PROTO_INCLUDE = '/usr/include';

/** What one OTLP/HTTP request carried, decoded with the official schema. */
export interface OtlpRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  resource: Record<string, SpanValue>;
  scopes: string[];
  spans: OtlpSpan[];
}

/** An OTLP/HTTP receiver on 127.0.0.1, as a collector's would be: it answers `status` to every request. */
export interface OtlpReceiver {
  port: number;
  requests: OtlpRequest[];
  close(): Promise<void>;
}

/** ExportTraceServiceRequest from trace_service.proto, its imports found under PROTO_INCLUDE. */
export async function traceRequestType(): Promise<protobuf.Type> {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => (isAbsolute(target) ? target : join(PROTO_INCLUDE, target));
  await root.load('opentelemetry/proto/collector/trace/v1/trace_service.proto');
  return root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest');
}

interface Decoded {
  resourceSpans?: { resource?: { attributes?: OtlpKeyValue[] }; scopeSpans?: { scope?: { name?: string }; spans?: OtlpSpan[] }[] }[];
}

/** The request body as the JSON mapping shows it: ids hex (protobufjs gives bytes as base64), int64 as strings. */
export function decodeTraceRequest(type: protobuf.Type, body: Buffer): Omit<OtlpRequest, 'method' | 'path' | 'headers'> {
  const decoded = type.toObject(type.decode(body), { longs: String, enums: Number, bytes: String }) as Decoded;
  const hex = (base64: string | undefined) => (base64 ? Buffer.from(base64, 'base64').toString('hex') : undefined);
  const resourceSpans = decoded.resourceSpans ?? [];
  const scopeSpans = resourceSpans.flatMap((resource) => resource.scopeSpans ?? []);
  return {
    resource: attributeRecord(resourceSpans[0]?.resource?.attributes),
    scopes: scopeSpans.map((scope) => scope.scope?.name ?? ''),
    spans: scopeSpans.flatMap((scope) =>
      (scope.spans ?? []).map((span) => ({
        ...span,
        traceId: hex(span.traceId) ?? '',
        spanId: hex(span.spanId) ?? '',
        ...(span.parentSpanId ? { parentSpanId: hex(span.parentSpanId) } : {}),
      })),
    ),
  };
}

export async function startOtlpReceiver(status = 200): Promise<OtlpReceiver> {
  const type = await traceRequestType();
  const requests: OtlpRequest[] = [];
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      requests.push({ method: request.method ?? '', path: request.url ?? '', headers: request.headers, ...decodeTraceRequest(type, Buffer.concat(chunks)) });
      response.writeHead(status, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A port on 127.0.0.1 that nothing listens on (it was free a moment ago). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
