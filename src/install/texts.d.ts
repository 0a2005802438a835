// The unit and logrotate texts are imported as strings (`with { type: "text" }`), so the compiled binary carries them.
declare module "*.service" {
  const text: string;
  export default text;
}
declare module "*.logrotate" {
  const text: string;
  export default text;
}
