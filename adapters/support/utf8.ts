/** Bytes as text for JSON: the text (invalid UTF-8 shown as U+FFFD), and the exact bytes in base64 only when that happened. */
export function textOrBase64(bytes: Buffer): { text: string; base64?: string } {
  try {
    return { text: new TextDecoder('utf-8', { fatal: true }).decode(bytes) };
  } catch {
    return { text: new TextDecoder('utf-8').decode(bytes), base64: bytes.toString('base64') };
  }
}
