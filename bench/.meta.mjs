import { build } from "esbuild";
import { gzipSync } from "node:zlib";
const code = process.argv[2];
const out = await build({ stdin: { contents: code, resolveDir: "/work/main", loader: "ts" }, bundle: true, minify: true, format: "esm", platform: "neutral", conditions: ["workerd","worker","browser"], mainFields: ["browser","module","main"], external: ["hono","hono/*"], write: false, metafile: true, logLevel: "silent", define: process.env.WEB ? { DYNACOUNT_WEB_BUILD: "true" } : {} });
console.log("total gz", gzipSync(out.outputFiles[0].contents,{level:9}).length);
const o = Object.values(out.metafile.outputs)[0];
for (const [k,v] of Object.entries(o.inputs).sort((a,b)=>b[1].bytesInOutput-a[1].bytesInOutput).slice(0,30)) console.log(String(v.bytesInOutput).padStart(7), k);
