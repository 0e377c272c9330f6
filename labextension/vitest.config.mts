import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    environment: 'happy-dom',
    include: ['test/**/*.test.ts'],
    // uPlot's CSS is imported by the widget entry only; the view modules need no CSS loader
    css: false
  }
});
