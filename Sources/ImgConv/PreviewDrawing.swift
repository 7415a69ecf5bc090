#if canImport(Glibc)
import Glibc
#endif
import ImgConvCore
import ImgConvFormats

/// Where everything lies on a contact sheet. All sizes are in pixels of the sheet.
///
/// The sheet has a white background and one row per class. A row is `rowHeight` tall; rows are
/// `gap` apart and `gap` from the edges, odd rows on a light grey band. Each row starts with the
/// label text `<index>: <name>` in a left margin `marginWidth` wide (the text centred vertically),
/// then, `gap` further right, up to `columns` cells of `cellWidth` x `cellHeight`, `gap` apart,
/// each framed by a one-pixel grey line just outside it:
///
///     width  = gap + marginWidth + gap + columns * (cellWidth + gap)
///     height = gap + rows * (rowHeight + gap)
///     cell (row r, column j) at x = 2 * gap + marginWidth + j * (cellWidth + gap),
///                               y = gap + r * (rowHeight + gap) + (rowHeight - cellHeight) / 2
public struct PreviewLayout: Sendable, Equatable {
    public var rows: Int
    public var columns: Int
    public var cellWidth: Int
    public var cellHeight: Int
    public var gap: Int
    /// Each font pixel is drawn as `fontScale` x `fontScale` sheet pixels.
    public var fontScale: Int
    /// Label characters per row at most (longer labels end in `...`).
    public var labelCharacters: Int
    public var marginWidth: Int
    public var rowHeight: Int
    public var width: Int
    public var height: Int

    /// Cells of an image of `imageWidth` x `imageHeight`: scaled, aspect ratio kept, so that its
    /// larger side is `maxCell` (enlarged when smaller, reduced when larger).
    public static func cellSize(imageWidth: Int, imageHeight: Int, maxCell: Int) -> (width: Int, height: Int) {
        if imageWidth >= imageHeight {
            return (maxCell, max(1, (imageHeight * maxCell + imageWidth / 2) / imageWidth))
        }
        return (max(1, (imageWidth * maxCell + imageHeight / 2) / imageHeight), maxCell)
    }

    /// - Parameter labelCharacters: the longest label, in characters (at most `PreviewLayout.maxLabelCharacters`).
    public init(rows: Int, columns: Int, cellWidth: Int, cellHeight: Int, labelCharacters: Int) {
        self.rows = rows
        self.columns = max(1, columns)
        self.cellWidth = cellWidth
        self.cellHeight = cellHeight
        gap = 4
        fontScale = cellHeight >= 24 ? 2 : 1
        self.labelCharacters = labelCharacters
        marginWidth = labelCharacters * BitmapFont.advance * fontScale
        rowHeight = max(cellHeight, BitmapFont.lineHeight * fontScale)
        width = gap + marginWidth + gap + self.columns * (cellWidth + gap)
        height = gap + rows * (rowHeight + gap)
    }

    /// `<index>: <name>` as the font shows it (non-ASCII characters as `?`), cut to
    /// `maxLabelCharacters` characters.
    static func labelText(index: Int, name: String) -> String {
        let text = BitmapFont.displayable("\(index): \(name)")
        let limit = maxLabelCharacters
        return text.count <= limit ? text : String(text.prefix(limit - 3)) + "..."
    }

    /// Labels longer than this many characters are cut and end in `...`.
    public static let maxLabelCharacters = 40

    /// Top-left corner of the cell of `column` in `row`.
    public func cellOrigin(row: Int, column: Int) -> (x: Int, y: Int) {
        (2 * gap + marginWidth + column * (cellWidth + gap), rowTop(row) + (rowHeight - cellHeight) / 2)
    }

    /// Top-left corner of the label text of `row`.
    public func textOrigin(row: Int) -> (x: Int, y: Int) {
        (gap, rowTop(row) + (rowHeight - BitmapFont.lineHeight * fontScale) / 2)
    }

    public func rowTop(_ row: Int) -> Int { gap + row * (rowHeight + gap) }
}

/// Draws a section's rows (bands, labels, framed cells) and stacks sections into one sheet.
enum PreviewCompositor {
    /// A section's pixels: `picks[r]` are the scaled samples of row r's images.
    static func draw(layout: PreviewLayout, texts: [String], picks: [[[UInt8]]], channels: Int, dtype: DType,
                     mapping: DisplayMapping) -> [UInt8] {
        var canvas = [UInt8](repeating: 255, count: layout.width * layout.height * 3)
        canvas.withUnsafeMutableBufferPointer { buffer in
            let sheet = Canvas(pixels: buffer, width: layout.width, height: layout.height)
            for r in texts.indices {
                if r % 2 == 1 {
                    sheet.fill(x: 0, y: layout.rowTop(r) - layout.gap / 2, width: layout.width,
                               height: layout.rowHeight + layout.gap, gray: 240)
                }
                let text = layout.textOrigin(row: r)
                BitmapFont.draw(texts[r], on: sheet, x: text.x, y: text.y, scale: layout.fontScale, gray: 0)
                if picks[r].isEmpty {
                    let cell = layout.cellOrigin(row: r, column: 0)
                    BitmapFont.draw("(no images)", on: sheet, x: cell.x, y: text.y, scale: layout.fontScale, gray: 128)
                }
                for (j, pixels) in picks[r].enumerated() {
                    let (x, y) = layout.cellOrigin(row: r, column: j)
                    sheet.frame(x: x - 1, y: y - 1, width: layout.cellWidth + 2, height: layout.cellHeight + 2, gray: 160)
                    pixels.withUnsafeBytes { sample in
                        drawCell(sample, on: sheet, x: x, y: y, width: layout.cellWidth, height: layout.cellHeight,
                                 channels: channels, dtype: dtype, mapping: mapping)
                    }
                }
            }
        }
        return canvas
    }

    /// Sections one under the other on white, each under its title (when titled), as wide as the
    /// widest; a section narrower than that is padded on the right.
    static func stack(_ sections: [PreviewSheet], titled titles: [String]?) -> PreviewDocument {
        let gap = 4, scale = 2
        let titleHeight = titles == nil ? 0 : BitmapFont.lineHeight * scale + 2 * gap
        let titleWidth = (titles ?? []).map { gap + $0.count * BitmapFont.advance * scale + gap }.max() ?? 0
        let width = max(titleWidth, sections.map(\.layout.width).max() ?? 1)
        let height = sections.reduce(0) { $0 + titleHeight + $1.layout.height }
        var pixels = [UInt8](repeating: 255, count: width * height * 3)
        var top = 0
        pixels.withUnsafeMutableBufferPointer { buffer in
            let sheet = Canvas(pixels: buffer, width: width, height: height)
            for (k, section) in sections.enumerated() {
                if let titles {
                    sheet.fill(x: 0, y: top, width: width, height: titleHeight, gray: 216)
                    BitmapFont.draw(BitmapFont.displayable(titles[k]), on: sheet, x: gap, y: top + gap, scale: scale, gray: 0)
                    top += titleHeight
                }
                let rowBytes = section.layout.width * 3
                for y in 0..<section.layout.height {
                    let from = y * rowBytes, to = ((top + y) * width) * 3
                    for b in 0..<rowBytes { buffer[to + b] = section.pixels[from + b] }
                }
                top += section.layout.height
            }
        }
        return PreviewDocument(width: width, height: height, pixels: pixels, sections: sections)
    }

    /// Draws one scaled image (interleaved samples of `dtype`) at (x, y): gray replicated to RGB,
    /// alpha composited on an 8-pixel grey checkerboard.
    static func drawCell(_ sample: UnsafeRawBufferPointer, on sheet: Canvas, x: Int, y: Int, width: Int, height: Int,
                                 channels: Int, dtype: DType, mapping: DisplayMapping) {
        let size = dtype.byteSize
        var v = [UInt8](repeating: 0, count: 4)
        for cy in 0..<height {
            for cx in 0..<width {
                let base = (cy * width + cx) * channels * size
                for c in 0..<channels { v[c] = mapping.byte(sample, at: base + c * size, dtype: dtype) }
                var rgb: (UInt8, UInt8, UInt8)
                switch channels {
                case 1: rgb = (v[0], v[0], v[0])
                case 2: rgb = (v[0], v[0], v[0])
                default: rgb = (v[0], v[1], v[2])
                }
                if channels == 2 || channels == 4 {
                    let alpha = Int(v[channels - 1])
                    let background = (cx / 8 + cy / 8) % 2 == 0 ? 255 : 204
                    func over(_ c: UInt8) -> UInt8 { UInt8((Int(c) * alpha + background * (255 - alpha) + 127) / 255) }
                    rgb = (over(rgb.0), over(rgb.1), over(rgb.2))
                }
                sheet.set(x: x + cx, y: y + cy, rgb)
            }
        }
    }
}

/// An RGB drawing surface over a buffer (clipped to its bounds).
struct Canvas {
    let pixels: UnsafeMutableBufferPointer<UInt8>
    let width: Int
    let height: Int

    @inline(__always)
    func set(x: Int, y: Int, _ rgb: (UInt8, UInt8, UInt8)) {
        guard x >= 0, y >= 0, x < width, y < height else { return }
        let p = (y * width + x) * 3
        pixels[p] = rgb.0
        pixels[p + 1] = rgb.1
        pixels[p + 2] = rgb.2
    }

    func fill(x: Int, y: Int, width w: Int, height h: Int, gray: UInt8) {
        let (x0, x1, y0, y1) = (max(0, x), min(width, x + w), max(0, y), min(height, y + h))
        guard x0 < x1, y0 < y1 else { return }
        for yy in y0..<y1 {
            for xx in x0..<x1 { set(x: xx, y: yy, (gray, gray, gray)) }
        }
    }

    func frame(x: Int, y: Int, width w: Int, height h: Int, gray: UInt8) {
        let c = (gray, gray, gray)
        for xx in x..<x + w { set(x: xx, y: y, c); set(x: xx, y: y + h - 1, c) }
        for yy in y..<y + h { set(x: x, y: yy, c); set(x: x + w - 1, y: yy, c) }
    }
}
