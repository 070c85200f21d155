// The example Worker's pictures: a badge with a page's views and a chart of its last 24 hours and 30 days.
import type { SeriesPoint } from "dynacount";

const xml = (text: string) => text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
const grouped = (n: number) => n.toLocaleString("en-US");

/** A shields-style badge, "views | 1,234": about 7 px per character of DejaVu/Verdana at 11 px. */
export function badge(views: number, label = "views"): string {
  const value = grouped(views);
  const [left, right] = [label.length * 7 + 12, value.length * 7 + 12];
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${left + right}" height="20" role="img" aria-label="${xml(label)}: ${value}">
<title>${xml(label)}: ${value}</title>
<rect width="${left}" height="20" rx="3" fill="#555"/><rect x="${left}" width="${right}" height="20" rx="3" fill="#f6821f"/>
<rect x="${left}" width="4" height="20" fill="#f6821f"/>
<g fill="#fff" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11" text-anchor="middle">
<text x="${left / 2}" y="14">${xml(label)}</text><text x="${left + right / 2}" y="14">${value}</text>
</g></svg>`;
}

/** Bars of one series in a box at (x, y), with its title and the busiest bucket's count. */
function bars(points: SeriesPoint[], title: string, x: number, y: number, width: number, height: number): string {
  const max = Math.max(1, ...points.map((p) => p.views));
  const step = width / Math.max(1, points.length);
  const drawn = points.map((p, i) => {
    const h = Math.round((p.views / max) * (height - 20));
    return `<rect x="${(x + i * step + 1).toFixed(1)}" y="${y + height - h}" width="${Math.max(1, step - 2).toFixed(1)}" height="${h}" fill="#f6821f"><title>${new Date(p.start).toISOString().slice(0, 16).replace("T", " ")} UTC: ${grouped(p.views)}</title></rect>`;
  });
  const total = points.reduce((a, p) => a + p.views, 0);
  return `<text x="${x}" y="${y + 12}" font-weight="bold">${xml(title)}: ${grouped(total)}</text><text x="${x + width}" y="${y + 12}" text-anchor="end" fill="#777">max ${grouped(max === 1 && total === 0 ? 0 : max)}</text>
<line x1="${x}" y1="${y + height}" x2="${x + width}" y2="${y + height}" stroke="#ccc"/>
${drawn.join("\n")}`;
}

/** Hourly views over the last 24 hours above daily views over the last 30 days. */
export function chart(page: string, hours: SeriesPoint[], days: SeriesPoint[]): string {
  const width = 640;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="300" font-family="sans-serif" font-size="12" role="img" aria-label="views of ${xml(page)}">
<rect width="100%" height="100%" fill="#fff"/>
<text x="16" y="22" font-size="14">Views of ${xml(page)}</text>
${bars(hours, "last 24 hours", 16, 36, width - 32, 110)}
${bars(days, "last 30 days", 16, 170, width - 32, 110)}
</svg>`;
}
