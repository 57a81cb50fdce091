import { defineConfig } from 'vitest/config';
import react from '@vitejs/plugin-react';

// Tauri serves the built files itself; the dev server is only for `tauri dev`.
export default defineConfig({
  plugins: [react()],
  clearScreen: false,
  server: { port: 5173, strictPort: true },
  build: { target: 'es2022', outDir: 'dist', emptyOutDir: true },
  // JavaScriptCore keeps a script with any character past Latin-1 as UTF-16: twice the memory.
  esbuild: { charset: 'ascii' },
  test: { environment: 'jsdom', include: ['test/**/*.test.tsx'], setupFiles: ['test/setup.ts'] },
});
