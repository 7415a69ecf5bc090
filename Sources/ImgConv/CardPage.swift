import FoundationEssentials
import Glibc
import ImgConvCore

/// The card's page: its data as JSON inside, its style and script inline (written for imgconv).
enum CardPage {
    /// `value` as a JSONValue (through its Codable form).
    static func value<T: Encodable>(_ value: T) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(value))
    }

    /// Deterministic JSON text: sorted keys, no escaped slashes.
    static func json(_ value: JSONValue) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    static func escape(_ s: String) -> String {
        s.replacing("&", with: "&amp;").replacing("<", with: "&lt;")
            .replacing(">", with: "&gt;").replacing("\"", with: "&quot;")
    }

    static func html(title: String, data: String) -> String {
        """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8">
        <meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
        <title>\(escape(title))</title>
        <style>\(style)</style></head>
        <body><h1>\(escape(title))</h1><div id="summary"></div>
        <h2>Classes</h2><table id="classes"></table>
        <h2>Tensors</h2><div id="tensors"></div>
        <div id="detail" hidden><h2>Selected image</h2><canvas id="zoom"></canvas><div id="hover">&nbsp;</div><dl id="detail-facts"></dl></div>
        <h2>Class balance</h2><div id="balance"></div>
        <h2>Skipped files</h2><div id="skipped"></div>
        <h2>Check findings</h2><div id="check"></div>
        <script type="application/json" id="card-data">\(data)</script>
        <script>\(script)</script></body></html>

        """
    }

    static let style = """
        body{font:14px system-ui,sans-serif;margin:16px;color:#222}h1{font-size:18px}h2{font-size:16px;margin-top:24px}
        table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:4px 8px;vertical-align:top;text-align:left}
        img.thumb{image-rendering:pixelated;margin:1px;border:2px solid transparent;cursor:pointer;height:40px}
        img.thumb.sel{border-color:#d22}.split-tag{font-size:11px;color:#666;margin-right:4px}
        .tensor{display:inline-block;margin:0 24px 16px 0;vertical-align:top}.stack{position:relative;width:120px;height:90px}
        .stack div{position:absolute;width:80px;height:60px;border:1px solid #446;background:#cde}
        .bar{background:#58a;height:12px;display:inline-block}.leak{background:#fdd}
        #detail{position:sticky;top:0;background:#fff;border:1px solid #ccc;padding:8px}#zoom{image-rendering:pixelated;border:1px solid #999}
        dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px}dt{font-weight:600}dd{margin:0;font-family:monospace;word-break:break-all}
        """

    static let script = #"""
        "use strict";
        const D = JSON.parse(document.getElementById("card-data").textContent);
        const el = (tag, attrs, ...kids) => { const e = document.createElement(tag);
          for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
          for (const k of kids) e.append(k); return e; };
        const fmt = v => v === null || v === undefined ? "-" : Number.isInteger(v) ? String(v) : v.toPrecision(6);
        const shape = s => "(" + s.join(", ") + ")";
        document.getElementById("summary").textContent =
          D.format + ", " + D.classes.length + " classes, splits: " + D.splits.map(s => s.name + " " + s.count).join(", ");
        const classes = document.getElementById("classes");
        classes.append(el("tr", {}, el("th", {}, "index"), el("th", {}, "class"),
          ...D.splits.map(s => el("th", {}, s.name)), el("th", {}, "samples")));
        const byPath = {};
        D.classes.forEach(c => {
          const cell = el("td", {});
          D.splits.forEach((s, si) => s.thumbs.forEach((t, ti) => {
            if (t.label !== c.index) return;
            const img = el("img", {src: t.png, class: "thumb", "data-split": s.name, "data-row": t.row, "data-label": t.label,
              title: s.images + "[" + t.row + "]"});
            img.addEventListener("click", () => show(si, ti, img));
            cell.append(img);
            if (t.path) byPath[t.path] = t.png;
          }));
          classes.append(el("tr", {class: "class", "data-index": c.index}, el("td", {class: "class-index"}, String(c.index)),
            el("td", {class: "class-name"}, c.name), ...D.splits.map(s => el("td", {class: "count"}, String(s.counts[c.index]))), cell));
        });
        const tensors = document.getElementById("tensors");
        D.splits.forEach(s => {
          const stack = el("div", {class: "stack"});
          for (let k = 0; k < Math.min(4, s.count); k++) { const d = el("div", {}); d.style.left = 8 * k + "px"; d.style.top = 8 * k + "px"; stack.append(d); }
          const facts = [["images", s.images, "name"], ["shape", shape(s.shape), "shape"], ["dtype", s.dtype, "dtype"], ["layout", s.layout, "layout"],
            ["value range", "[" + fmt(s.min) + ", " + fmt(s.max) + "]", "range"],
            ["mean per channel", s.mean.map(fmt).join(", "), "mean"], ["std per channel", s.std.map(fmt).join(", "), "std"],
            ["labels", s.labels, "labels-name"], ["labels shape", shape(s.labelsShape), "labels-shape"], ["labels dtype", s.labelsDtype, "labels-dtype"],
            ["labels form", s.labelForm, "labels-form"]];
          const dl = el("dl", {});
          facts.forEach(([k, v, c]) => dl.append(el("dt", {}, k), el("dd", {class: c}, v)));
          tensors.append(el("div", {class: "tensor", "data-split": s.name}, el("h3", {}, s.name), stack, dl));
        });
        const zoom = document.getElementById("zoom"), hover = document.getElementById("hover");
        let current = null;
        function show(si, ti, img) {
          document.querySelectorAll("img.thumb.sel").forEach(e => e.classList.remove("sel"));
          img.classList.add("sel");
          const s = D.splits[si], t = s.thumbs[ti], n = D.classes.length;
          const onehot = Array.from({length: n}, (_, k) => k === t.label ? 1 : 0);
          const facts = [["split", s.name, "detail-split"], ["tensor row", s.images + "[" + t.row + "]", "detail-row"],
            ["label", t.label + " (" + D.classes[t.label].name + ")", "detail-label"],
            [s.labelForm === "onehot" ? "one-hot row" : "label row", s.labelForm === "onehot" ? "[" + onehot.join(", ") + "]" : s.labels + "[" + t.row + "] = " + t.label, "detail-onehot"],
            ["source", t.path || "-", "detail-path"], ["SHA-256", t.sha256 || "-", "detail-sha"],
            ["rotation", t.orientation ? "EXIF orientation " + t.orientation + " applied" : "none", "detail-rotation"]];
          const dl = document.getElementById("detail-facts"); dl.replaceChildren();
          facts.forEach(([k, v, c]) => dl.append(el("dt", {}, k), el("dd", {id: c}, v)));
          const scale = Math.max(1, Math.floor(256 / Math.max(s.thumbWidth, s.thumbHeight)));
          zoom.width = s.thumbWidth * scale; zoom.height = s.thumbHeight * scale;
          const ctx = zoom.getContext("2d"); ctx.imageSmoothingEnabled = false;
          ctx.drawImage(img, 0, 0, zoom.width, zoom.height);
          current = {s, t, scale};
          document.getElementById("detail").hidden = false;
        }
        zoom.addEventListener("mousemove", e => {
          if (!current) return;
          const {s, t, scale} = current, x = Math.floor(e.offsetX / scale), y = Math.floor(e.offsetY / scale);
          if (x < 0 || y < 0 || x >= s.thumbWidth || y >= s.thumbHeight) return;
          const base = (y * s.thumbWidth + x) * s.channels;
          const bytes = Uint8Array.from(atob(t.raw), ch => ch.charCodeAt(0)), view = new DataView(bytes.buffer), vals = [];
          for (let c = 0; c < s.channels; c++) vals.push(sampleValue(view, (base + c) * SIZE[s.dtype], s.dtype));
          hover.textContent = "sample (" + x + ", " + y + "): " + vals.map(fmt).join(", ");
        });
        // The thumbnail's stored samples: little-endian values of the tensor's dtype.
        const SIZE = {uint8: 1, int8: 1, uint16: 2, int16: 2, float16: 2, int32: 4, uint32: 4, float32: 4, int64: 8, float64: 8};
        function sampleValue(v, o, dtype) {
          switch (dtype) {
            case "uint8": return v.getUint8(o);
            case "int8": return v.getInt8(o);
            case "uint16": return v.getUint16(o, true);
            case "int16": return v.getInt16(o, true);
            case "int32": return v.getInt32(o, true);
            case "uint32": return v.getUint32(o, true);
            case "int64": return Number(v.getBigInt64(o, true));
            case "float32": return v.getFloat32(o, true);
            case "float64": return v.getFloat64(o, true);
            case "float16": { const h = v.getUint16(o, true), e = (h >> 10) & 31, m = h & 1023, sg = h >> 15 ? -1 : 1;
              return e === 0 ? sg * m * 2 ** -24 : e === 31 ? (m ? NaN : sg * Infinity) : sg * (1 + m / 1024) * 2 ** (e - 15); }
          }
          return NaN;
        }
        const balance = document.getElementById("balance");
        D.splits.forEach(s => {
          const most = Math.max(1, ...s.counts);
          const t = el("table", {class: "balance", "data-split": s.name}, el("caption", {}, s.name));
          D.classes.forEach(c => { const b = el("span", {class: "bar"}); b.style.width = Math.round(300 * s.counts[c.index] / most) + "px";
            t.append(el("tr", {}, el("td", {}, c.name), el("td", {}, b, " " + s.counts[c.index]))); });
          balance.append(t);
        });
        const skipped = document.getElementById("skipped");
        if (!D.skipped) skipped.textContent = "no manifest";
        else if (D.skipped.length === 0) skipped.textContent = "none";
        else skipped.append(el("ul", {}, ...D.skipped.map(f => el("li", {class: "skip"}, (f.path || "") + ": " + (f.reason || JSON.stringify(f))))));
        const check = document.getElementById("check");
        if (!D.check) check.textContent = "not run";
        else {
          const d = D.check.duplicates, groups = [];
          [["identical bytes", d.bytes], ["identical pixels", d.pixels], ["near duplicates", d.near]].forEach(([kind, gs]) =>
            (gs || []).forEach(g => groups.push([kind, g])));
          if (groups.length === 0) check.append(el("p", {}, "no duplicates"));
          groups.forEach(([kind, g]) => {
            const row = el("div", {class: "dup" + (g.leak ? " leak" : "")}, el("strong", {}, kind + (g.leak ? " - LEAK across splits" : "") + ": "));
            g.files.forEach(f => { const item = el("span", {class: "dup-file"});
              if (byPath[f.path]) item.append(el("img", {src: byPath[f.path], class: "dupimg", height: "40"}));
              item.append(" " + f.path + (f.split ? " [" + f.split + "]" : "") + "  "); row.append(item); });
            check.append(row);
          });
          const c = D.check.counts || {};
          check.append(el("p", {id: "check-counts"}, Object.keys(c).sort().map(k => k + ": " + c[k]).join(", ")));
        }
        """#
}
