// The sha256 of a file, read as a stream (the binary is ~110 MB): install records it, uninstall and release compare it.
export async function sha256File(path: string): Promise<string> {
  const h = new Bun.CryptoHasher("sha256");
  for await (const chunk of Bun.file(path).stream()) h.update(chunk);
  return h.digest("hex");
}
