// The widget build (esbuild) loads CSS files as text and injects them itself.
declare module '*.css' {
  const text: string;
  export default text;
}
