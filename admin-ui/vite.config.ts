import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// Everything is bundled: no CDN, no external font, so the UI works on a cluster with no internet.
export default defineConfig({
  plugins: [react()],
  base: "/",
  build: {
    outDir: process.env.WSGATE_UI_OUT || "dist",
    emptyOutDir: true,
    sourcemap: false,
    assetsInlineLimit: 0,
  },
  server: {
    // `npm exec vite` during development: the API is wsgate's admin port.
    proxy: { "/wsgate.v1.": "http://127.0.0.1:8081", "/api/": "http://127.0.0.1:8081" },
  },
});
