import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// The console is served by the Vigil server under `/`, its API under `/api/v1`.
// `npm run dev` proxies the API to a running `vigil up` (VIGIL_API, default 127.0.0.1:8080).
export default defineConfig({
  plugins: [react()],
  build: { outDir: "dist", emptyOutDir: true, sourcemap: false, chunkSizeWarningLimit: 800 },
  server: {
    proxy: {
      "/api": { target: process.env.VIGIL_API ?? "http://127.0.0.1:8080", ws: true },
    },
  },
});
