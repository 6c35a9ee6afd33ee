// Builds the dashboard into the Python package, where the FastAPI server serves it.
// `npm run dev` serves it with hot reload and forwards /api to a running `epochal ui --port 8765`.
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

const here = fileURLToPath(new URL(".", import.meta.url));

export default defineConfig({
  root: here,
  // Relative asset URLs, so the built page also works when served under a path prefix.
  base: "./",
  build: {
    outDir: fileURLToPath(new URL("../src/epochal/server/static", import.meta.url)),
    emptyOutDir: true,
    target: "es2022",
    chunkSizeWarningLimit: 400,
  },
  server: {
    proxy: { "/api": "http://127.0.0.1:8765" },
  },
});
