// `vite build` → dist/ (served by src/server.ts); `vite` → dev server proxying the API.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const api = process.env.API_URL ?? 'http://127.0.0.1:4000';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022', chunkSizeWarningLimit: 600 },
  server: {
    host: '127.0.0.1',
    proxy: { '/api': { target: api, changeOrigin: false }, '/healthz': api },
  },
});
