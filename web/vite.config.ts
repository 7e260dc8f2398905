// The console is plain React compiled by esbuild's automatic JSX runtime: no Vite
// plugin, so the toolchain installs with any npm (see README, "Web console").
import { defineConfig } from 'vitest/config';

export default defineConfig({
  esbuild: { jsx: 'automatic' },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // Nothing inline: the host's Content-Security-Policy allows only its own files.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    chunkSizeWarningLimit: 600,
    rollupOptions: {
      // React Server Components markers in TanStack's files mean nothing to a client bundle.
      onwarn(warning, warn) {
        if (warning.code === 'MODULE_LEVEL_DIRECTIVE') return;
        warn(warning);
      },
    },
  },
  server: {
    // `npm run dev` against a host running on this machine with the default ports.
    proxy: {
      '/api': { target: 'https://127.0.0.1:47990', secure: false, changeOrigin: true },
    },
  },
  test: {
    include: ['src/**/*.test.ts'],
  },
});
