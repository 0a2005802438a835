// The docs pages and the man page are imported as strings (`with { type: "text" }`), so the compiled binary carries them.
declare module "*.md" {
  const text: string;
  export default text;
}
declare module "*.1" {
  const text: string;
  export default text;
}
