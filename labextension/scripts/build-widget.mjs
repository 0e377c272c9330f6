// Builds the anywidget front end: src/widget.ts and everything it imports (the shared job
// view, uPlot, the CSS as text) into ONE self-contained ES module that anywidget loads as
// `_esm` (jupyter_jobctl/static/widget.js). No bare imports may remain: the file is loaded
// standalone, with no bundler or CDN behind it.
import { build } from 'esbuild';
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const outfile = resolve(here, '../../jupyter_jobctl/static/widget.js');
const production = process.argv.includes('--production') || process.env.NODE_ENV === 'production';

mkdirSync(dirname(outfile), { recursive: true });
await build({
  entryPoints: [resolve(here, '../src/widget.ts')],
  outfile,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['es2020'],
  loader: { '.css': 'text' },
  minify: production,
  sourcemap: false,
  legalComments: 'eof',
  banner: { js: '// jupyter_jobctl anywidget front end; built from labextension/src by `npm run build:widget`.' },
  logLevel: 'info'
});
