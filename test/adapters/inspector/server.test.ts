import { get } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { type InspectorServer, startInspectorServer } from '../../../adapters/inspector/server.js';

/** GET on 127.0.0.1 with the Host header a browser would send for `host`. */
function status(server: InspectorServer, path: string, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port: server.port, path, headers: { host } }, (response) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    }).on('error', reject);
  });
}

describe('the inspector server', () => {
  let server: InspectorServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('answers 127.0.0.1 and localhost under its token, and no other Host (DNS rebinding)', async () => {
    server = await startInspectorServer({ port: 0 });
    const page = new URL(server.url).pathname;
    expect(await status(server, page, `127.0.0.1:${server.port}`)).toBe(200);
    expect(await status(server, `${page}messages`, `LOCALHOST:${server.port}`)).toBe(200);
    expect(await status(server, page, `attacker.example:${server.port}`)).toBe(421);
    expect(await status(server, page, `127.0.0.1.nip.io:${server.port}`)).toBe(421);
    expect(await status(server, page, '127.0.0.1')).toBe(421);
    expect(await status(server, '/not-the-token/', `127.0.0.1:${server.port}`)).toBe(404);
  });

  it('serves the layout library elkjs from the installed package, under its token only (no CDN)', async () => {
    server = await startInspectorServer({ port: 0 });
    const page = new URL(server.url).pathname;
    const host = `127.0.0.1:${server.port}`;
    const body = await new Promise<string>((resolve, reject) => {
      get({ host: '127.0.0.1', port: server?.port, path: `${page}elk.js`, headers: { host } }, (response) => {
        let text = '';
        response.on('data', (chunk: Buffer) => (text += chunk.toString()));
        response.on('end', () => resolve(text));
      }).on('error', reject);
    });
    expect(body).toContain('g.ELK = f()');
    expect(await status(server, '/elk.js', host)).toBe(404);
    const html = await new Promise<string>((resolve, reject) => {
      get({ host: '127.0.0.1', port: server?.port, path: page, headers: { host } }, (response) => {
        let text = '';
        response.on('data', (chunk: Buffer) => (text += chunk.toString()));
        response.on('end', () => resolve(text));
      }).on('error', reject);
    });
    // The page loads nothing from another origin.
    expect(html).toContain("elkScript.src = 'elk.js'");
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
  });
});
