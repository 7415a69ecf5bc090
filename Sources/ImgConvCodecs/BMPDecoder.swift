import ImgConvCore

/// BMP (and DIB) read by imgconv itself: no Debian library decodes BMP alone. Every header field
/// is checked against the bytes given before it is used, and nothing is allocated before the
/// limits (and, for the pixels, the file) allow it. The results are Pillow 13's
/// (`BmpImagePlugin`) wherever Pillow's result is the picture:
/// - headers: OS/2 1.x (12 bytes: 16-bit sizes, 3-byte palette entries, never top-down), OS/2 2.x
///   (16 or 64 bytes), BITMAPINFOHEADER (40) and its V2 (52), V3 (56), V4 (108) and V5 (124)
///   successors; a negative height stores the rows top-down; planes must be 1; a file without
///   the 14-byte `BM` file header (a bare DIB) starts with the info header, pixels after the
///   palette;
/// - 1, 4 and 8-bit palettes expand to RGB (indices past the stored entries are black), except
///   the palettes Pillow reads as gray: black and white (or black alone) give 1-channel 0/255
///   (index 0 black, any other white), a ramp whose entry i is (i, i, i) gives 1-channel i.
///   Pillow reads 4 and 8-bit indices of a black-and-white palette as 1-bit data, and 1 and 4-bit
///   indices of a ramp as 8-bit data; imgconv decodes the indices;
/// - RLE8 (8-bit only) and RLE4 (4-bit only) exactly as Pillow's `BmpRleDecoder`: runs clamped
///   to the row, absolute runs running on into the next row, word alignment by file position,
///   skipped pixels (end of line, delta) as index 0, and data that stops before the last pixel
///   refused;
/// - 16, 24 and 32 bits, BI_RGB (5-5-5, BGR, BGRX) or BITFIELDS/ALPHABITFIELDS with any masks
///   whose bits are contiguous, disjoint and inside the pixel: each field scales to 8 bits as
///   `v * 255 / (2^n - 1)` rounded down (Pillow's 5-5-5 and 5-6-5 scaling; 4-bit fields x17).
///   Pillow opens a few mask layouts only; imgconv reads the others by the same rule;
/// - alpha only where Pillow keeps it: 32-bit BITFIELDS with an alpha mask (or with all four masks
///   zero, read as BGRA); 32-bit BI_RGB stays RGB whatever its fourth byte holds, and the alpha
///   mask of 16 and 24-bit pixels is not read (Pillow reads 1-5-5-5 as RGB);
/// - refused: 2-bit and 64-bit pixels, embedded JPEG or PNG, OS/2 Huffman and RLE24, palettes of
///   more than 65536 colours (or more than 256 that are not gray), pixel data that ends early or
///   starts inside the header.
public struct BMPDecoder: ImageDecoder {
    public var limits: DecodeLimits

    public init(limits: DecodeLimits = DecodeLimits()) {
        self.limits = limits
    }

    public func readHeader(_ data: [UInt8]) throws -> ImageHeader {
        let l = try BMPLayout(data)
        try limits.check(width: l.width, height: l.height, channels: l.channels, depth: .eight)
        return ImageHeader(width: l.width, height: l.height, channels: l.channels, depth: .eight)
    }

    public func decode(_ data: [UInt8], header: ImageHeader) throws -> PixelBuffer {
        let l = try BMPLayout(data)
        guard l.width == header.width, l.height == header.height, l.channels == header.channels,
              header.depth == .eight else {
            throw ImgConvError(.corruptInput, "header changed between reads")
        }
        try limits.check(width: l.width, height: l.height, channels: l.channels, depth: .eight)
        let pixels: [UInt8]
        switch l.compression {
        case .rle8, .rle4: pixels = try decodeRLE(data, l)
        case .none, .bitfields: pixels = try decodeRaw(data, l)
        }
        return PixelBuffer(width: l.width, height: l.height, channels: l.channels, depth: .eight, bytes: pixels)
    }

    /// Uncompressed rows (bottom-up unless top-down), each padded to 4 bytes; the last row needs
    /// no padding (Pillow reads as much).
    private func decodeRaw(_ d: [UInt8], _ l: BMPLayout) throws -> [UInt8] {
        let rowBits = l.width * l.bits  // width < 2^31, bits <= 32: no overflow
        let stride = ((rowBits + 31) >> 3) & ~3
        let rowBytes = (rowBits + 7) >> 3
        let (rows, o1) = stride.multipliedReportingOverflow(by: l.height - 1)
        let (need, o2) = rows.addingReportingOverflow(rowBytes)
        let have = max(0, d.count - l.pixelOffset)
        guard !o1, !o2, have >= need else {
            throw ImgConvError(.corruptInput, "BMP pixel data cut short: \(have) of \(o1 || o2 ? "more than \(Int.max)" : "\(need)") bytes")
        }
        let w = l.width, h = l.height, ch = l.channels
        var out = [UInt8](repeating: 0, count: w * h * ch)
        d.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for y in 0..<h {
                    let row = l.pixelOffset + (l.topDown ? y : h - 1 - y) * stride
                    let o = y * w * ch
                    switch l.bits {
                    case 1, 4, 8:
                        for x in 0..<w {
                            let index: UInt8
                            switch l.bits {
                            case 8: index = src[row + x]
                            case 4: index = (src[row + x >> 1] >> (x & 1 == 0 ? 4 : 0)) & 0x0F
                            default: index = (src[row + x >> 3] >> (7 - x & 7)) & 1
                            }
                            l.colours.store(index, dst, o + x * ch)
                        }
                    case 16:
                        for x in 0..<w {
                            let p = UInt32(src[row + 2 * x]) | UInt32(src[row + 2 * x + 1]) << 8
                            l.masks.store(p, dst, o + x * ch)
                        }
                    case 24:
                        for x in 0..<w {
                            let s = row + 3 * x
                            let p = UInt32(src[s]) | UInt32(src[s + 1]) << 8 | UInt32(src[s + 2]) << 16
                            l.masks.store(p, dst, o + x * ch)
                        }
                    default:
                        for x in 0..<w {
                            let s = row + 4 * x
                            let p = UInt32(src[s]) | UInt32(src[s + 1]) << 8 | UInt32(src[s + 2]) << 16 | UInt32(src[s + 3]) << 24
                            l.masks.store(p, dst, o + x * ch)
                        }
                    }
                }
            }
        }
        return out
    }

    /// RLE8/RLE4 as Pillow's `BmpRleDecoder.decode`, into an index image in file row order, then
    /// coloured (and flipped when bottom-up).
    private func decodeRLE(_ d: [UInt8], _ l: BMPLayout) throws -> [UInt8] {
        let w = l.width, h = l.height, ch = l.channels
        let available = max(0, d.count - l.pixelOffset)
        // A byte of RLE data yields at most 64 * (width + 1) pixels (a 4-byte delta skips 255 rows
        // and 255 pixels; runs and line ends yield less): a stream too short to reach the last
        // pixel is refused before the index buffer is allocated.
        let (reach, overflow) = available.multipliedReportingOverflow(by: 64 * (w + 1))
        guard overflow || w * h <= reach else {
            throw ImgConvError(.corruptInput, "BMP RLE data of \(available) bytes cannot fill \(w)x\(h) pixels")
        }
        // The index buffer is alive beside the output.
        guard let bytes = checkedByteCount([w, h, ch + 1], elementSize: 1), bytes <= limits.maxBytes else {
            throw ImgConvError(.limitExceeded, "\(w)x\(h) pixels need more than \(limits.maxBytes) bytes to decode")
        }
        let rle4 = l.compression == .rle4
        let dest = w * h
        var index = [UInt8](repeating: 0, count: dest)
        var n = 0, x = 0, pos = l.pixelOffset
        let end = d.count
        index.withUnsafeMutableBufferPointer { idx in
            d.withUnsafeBufferPointer { src in
                while n < dest {
                    guard pos + 2 <= end else { break }
                    let count = Int(src[pos]), byte = src[pos + 1]
                    pos += 2
                    if count > 0 {
                        // Encoded run, clamped to the row (x may be past it after an absolute run).
                        let run = x + count > w ? max(0, w - x) : count
                        let k = min(run, dest - n)
                        if rle4 {
                            let hi = byte >> 4, lo = byte & 0x0F
                            for i in 0..<k { idx[n + i] = i & 1 == 0 ? hi : lo }
                        } else {
                            for i in 0..<k { idx[n + i] = byte }
                        }
                        n += k
                        x += run
                    } else if byte == 0 {
                        // End of line: index 0 up to the next row.
                        if n % w != 0 { n = min(dest, n + w - n % w) }
                        x = 0
                    } else if byte == 1 {
                        break  // end of bitmap
                    } else if byte == 2 {
                        guard pos + 2 <= end else { break }
                        let right = Int(src[pos]), up = Int(src[pos + 1])
                        pos += 2
                        n += min(dest - n, right + up * w)
                        x = n % w
                    } else {
                        // Absolute run of `byte` indices, not clamped to the row, then word alignment
                        // by file position.
                        let wanted = min(dest - n, Int(byte))
                        if rle4 {
                            let byteCount = (wanted + 1) / 2
                            let got = min(byteCount, end - pos)
                            for i in 0..<got {
                                let b = src[pos + i]
                                idx[n] = b >> 4
                                n += 1
                                if i * 2 + 1 < wanted {
                                    idx[n] = b & 0x0F
                                    n += 1
                                }
                            }
                            pos += got
                            if got < byteCount || n == dest { break }
                        } else {
                            let got = min(wanted, end - pos)
                            for i in 0..<got { idx[n + i] = src[pos + i] }
                            n += got
                            pos += got
                            if got < wanted || n == dest { break }
                        }
                        x += Int(byte)
                        if pos % 2 != 0 { pos += 1 }
                    }
                }
            }
        }
        guard n >= dest else {
            throw ImgConvError(.corruptInput, "BMP RLE data ends after \(n) of \(dest) pixels")
        }
        var out = [UInt8](repeating: 0, count: dest * ch)
        index.withUnsafeBufferPointer { idx in
            out.withUnsafeMutableBufferPointer { dst in
                for y in 0..<h {
                    let row = (l.topDown ? y : h - 1 - y) * w
                    let o = y * w * ch
                    for x in 0..<w { l.colours.store(idx[row + x], dst, o + x * ch) }
                }
            }
        }
        return out
    }
}

/// What the headers of a BMP say, every field checked against the bytes it was read from.
struct BMPLayout {
    enum Compression { case none, rle8, rle4, bitfields }

    var width: Int
    var height: Int
    var topDown: Bool
    var bits: Int
    var compression: Compression
    /// Colours of 1/4/8-bit indices.
    var colours = PaletteColours.palette([])
    /// Fields of 16/24/32-bit pixels.
    var masks = BitMasks.default24
    /// Where the pixel data starts (may be past the bytes given: checked when decoding).
    var pixelOffset: Int
    var channels: Int

    static let headerSizes = [12, 16, 40, 52, 56, 64, 108, 124]

    init(_ d: [UInt8]) throws {
        // The 14-byte file header ("BM", file size, reserved, pixel offset), absent from a bare DIB.
        let base: Int, offsetField: Int
        if d.count >= 2 && d[0] == 0x42 && d[1] == 0x4D {
            guard d.count >= 18 else { throw Self.corrupt("BMP file header cut short (\(d.count) bytes)") }
            base = 14
            offsetField = Int(Self.u32(d, 10))
        } else {
            guard d.count >= 4 else { throw Self.corrupt("BMP header cut short (\(d.count) bytes)") }
            base = 0
            offsetField = 0
        }
        let size = Int(Self.u32(d, base))
        guard Self.headerSizes.contains(size) else {
            throw ImgConvError(.unsupported, "BMP info header of \(size) bytes is not one of the known sizes (12, 16, 40, 52, 56, 64, 108, 124)")
        }
        guard d.count - base >= size else {
            throw Self.corrupt("BMP info header cut short: \(d.count - base) of \(size) bytes")
        }
        let os2 = size == 12 || size == 16 || size == 64
        let planes: Int, compressionField: UInt32, coloursField: UInt32
        if size == 12 {
            width = Self.u16(d, base + 4)
            height = Self.u16(d, base + 6)
            topDown = false
            planes = Self.u16(d, base + 8)
            bits = Self.u16(d, base + 10)
            compressionField = 0
            coloursField = 0
        } else {
            width = Int(Int32(bitPattern: Self.u32(d, base + 4)))
            let h = Int(Int32(bitPattern: Self.u32(d, base + 8)))
            topDown = h < 0
            height = abs(h)
            planes = Self.u16(d, base + 12)
            bits = Self.u16(d, base + 14)
            // A 16-byte OS/2 2.x header stops here: the fields it leaves out are zero.
            compressionField = size >= 20 ? Self.u32(d, base + 16) : 0
            coloursField = size >= 36 ? Self.u32(d, base + 32) : 0
        }
        guard width > 0, height > 0 else { throw Self.corrupt("image has no pixels (\(width)x\(topDown ? -height : height))") }
        guard planes == 1 else { throw Self.corrupt("BMP header gives \(planes) planes (must be 1)") }
        guard [1, 4, 8, 16, 24, 32].contains(bits) else {
            throw ImgConvError(.unsupported, "BMP with \(bits) bits per pixel is not supported")
        }

        // Compression, and for bit fields the masks: after a 40-byte header (three, or four for
        // ALPHABITFIELDS), inside a longer one (R, G, B at 40; A at 52 from 56 bytes on).
        var maskEnd = base + size
        switch (compressionField, os2) {
        case (0, _):
            compression = .none
        case (1, _), (2, _):
            compression = compressionField == 1 ? .rle8 : .rle4
            let want = compressionField == 1 ? 8 : 4
            guard bits == want else {
                throw Self.corrupt("BMP with RLE\(want) compression has \(bits) bits per pixel (must be \(want))")
            }
        case (3, false), (6, false):
            compression = .bitfields
            guard bits >= 16 else {
                throw Self.corrupt("BMP with bit-field masks has \(bits) bits per pixel (must be 16, 24 or 32)")
            }
            var m: [UInt32]
            if size == 40 {
                let count = compressionField == 6 ? 4 : 3
                guard d.count - maskEnd >= 4 * count else { throw Self.corrupt("BMP bit-field masks cut short") }
                m = (0..<count).map { Self.u32(d, maskEnd + 4 * $0) }
                maskEnd += 4 * count
            } else {
                m = (0..<(size >= 56 ? 4 : 3)).map { Self.u32(d, base + 40 + 4 * $0) }
            }
            if m.count == 3 { m.append(0) }
            masks = try BitMasks(r: m[0], g: m[1], b: m[2], a: m[3], bits: bits)
        case (3, true), (4, true):
            throw ImgConvError(.unsupported, "OS/2 BMP with \(compressionField == 3 ? "Huffman 1D" : "RLE24") compression is not supported")
        case (4, _), (5, _):
            throw ImgConvError(.unsupported, "BMP holding a \(compressionField == 4 ? "JPEG" : "PNG") image is not supported")
        default:
            throw ImgConvError(.unsupported, "BMP compression \(compressionField) is not supported")
        }
        if compression == .none && bits > 8 {
            masks = bits == 16 ? .rgb555 : bits == 24 ? .default24 : .bgrx
        }

        // The palette: right after the header, `colours` entries of 3 (OS/2 1.x) or 4 bytes.
        let entry = size == 12 ? 3 : 4
        var paletteSize = 0
        var paletteEnd = maskEnd
        if bits <= 8 {
            paletteSize = coloursField == 0 ? 1 << bits : Int(coloursField)
            guard paletteSize <= 65536 else { throw Self.corrupt("BMP palette of \(coloursField) colours (at most 65536)") }
            let start = base + size
            let stored = min(paletteSize * entry, d.count - start)
            paletteEnd = start + stored
            colours = try PaletteColours(d, start: start, stored: stored, entry: entry, colours: paletteSize, bits: bits)
        }
        channels = bits <= 8 ? colours.channels : masks.a == nil ? 3 : 4

        // Pixel data: at the file header's offset; Pillow adds the palette when the offset points
        // right after the info header, and takes the end of what it read when the offset is 0.
        var offset = offsetField
        if offset == 14 + size && bits <= 8 { offset += entry * paletteSize }
        if offset == 0 { offset = paletteEnd }
        guard offset >= base + size else {
            throw Self.corrupt("BMP pixel data offset \(offset) lies inside the \(base + size)-byte header")
        }
        pixelOffset = offset
    }

    static func corrupt(_ message: String) -> ImgConvError { ImgConvError(.corruptInput, message) }

    @inline(__always) static func u16(_ d: [UInt8], _ i: Int) -> Int { Int(d[i]) | Int(d[i + 1]) << 8 }

    @inline(__always) static func u32(_ d: [UInt8], _ i: Int) -> UInt32 {
        UInt32(d[i]) | UInt32(d[i + 1]) << 8 | UInt32(d[i + 2]) << 16 | UInt32(d[i + 3]) << 24
    }
}

/// The colours of 1/4/8-bit indices, as Pillow reads the palette.
enum PaletteColours {
    /// RGB for every index (256 entries; black past the stored ones).
    case palette([UInt8])
    /// Pillow's mode `1`: a palette of black and white (or black alone); 1 channel, index 0 black
    /// and any other white (as Pillow reads RLE indices into mode `1`).
    case bilevel
    /// Pillow's mode `L`: entry i is (i, i, i) for every entry; 1 channel, the index.
    case grayRamp

    /// - Parameters: `stored` bytes of the palette are in `d` from `start` (fewer than
    ///   `colours * entry` when the file ends first, which Pillow reads as it is).
    init(_ d: [UInt8], start: Int, stored: Int, entry: Int, colours: Int, bits: Int) throws {
        // Pillow's test: colours == 2 compares with black and white, otherwise entry i with (i, i, i)
        // (i modulo 256); an entry cut short by the file's end is not gray.
        var gray = true
        for i in 0..<colours {
            let v = UInt8(truncatingIfNeeded: colours == 2 ? (i == 0 ? 0 : 255) : i)
            let o = i * entry
            if o + 3 > stored || d[start + o] != v || d[start + o + 1] != v || d[start + o + 2] != v {
                gray = false
                break
            }
        }
        if gray {
            self = colours <= 2 ? .bilevel : .grayRamp
            return
        }
        let entries = stored / entry
        guard entries <= 256 else {
            throw ImgConvError(.corruptInput, "BMP palette of \(entries) colours for \(bits)-bit indices (more than 256)")
        }
        var rgb = [UInt8](repeating: 0, count: 256 * 3)
        for i in 0..<entries {
            let o = start + i * entry
            rgb[3 * i] = d[o + 2]
            rgb[3 * i + 1] = d[o + 1]
            rgb[3 * i + 2] = d[o]
        }
        self = .palette(rgb)
    }

    var channels: Int {
        if case .palette = self { return 3 }
        return 1
    }

    @inline(__always) func store(_ index: UInt8, _ dst: UnsafeMutableBufferPointer<UInt8>, _ at: Int) {
        switch self {
        case .palette(let rgb):
            let i = Int(index) * 3
            dst[at] = rgb[i]
            dst[at + 1] = rgb[i + 1]
            dst[at + 2] = rgb[i + 2]
        case .bilevel:
            dst[at] = index == 0 ? 0 : 255
        case .grayRamp:
            dst[at] = index
        }
    }
}

/// One colour field of a 16/24/32-bit pixel, scaled to 8 bits.
struct BitField {
    let mask: UInt32
    let shift: UInt32
    /// 2^bits - 1 (0 for an absent field).
    let maxValue: UInt64

    init(_ mask: UInt32) {
        self.mask = mask
        shift = mask == 0 ? 0 : UInt32(mask.trailingZeroBitCount)
        maxValue = mask == 0 ? 0 : (UInt64(1) << UInt64(mask.nonzeroBitCount)) - 1
    }

    /// `v * 255 / (2^n - 1)`, rounded down: Pillow's 5-5-5 and 5-6-5 scaling, exact for 8 bits.
    @inline(__always) func value(_ p: UInt32) -> UInt8 {
        let v = UInt64((p & mask) >> shift)
        if maxValue == 255 { return UInt8(truncatingIfNeeded: v) }
        if maxValue == 0 { return 0 }
        return UInt8(truncatingIfNeeded: v * 255 / maxValue)
    }
}

/// The fields of a 16/24/32-bit pixel (read as a little-endian integer).
struct BitMasks {
    var r: BitField
    var g: BitField
    var b: BitField
    /// Kept only where Pillow keeps alpha: 32-bit bit fields.
    var a: BitField?

    static let rgb555 = BitMasks(r: BitField(0x7C00), g: BitField(0x03E0), b: BitField(0x001F), a: nil)
    static let default24 = BitMasks(r: BitField(0xFF0000), g: BitField(0xFF00), b: BitField(0xFF), a: nil)
    static let bgrx = default24

    init(r: BitField, g: BitField, b: BitField, a: BitField?) {
        self.r = r
        self.g = g
        self.b = b
        self.a = a
    }

    /// Masks from a header, checked: inside the pixel, contiguous, disjoint, not all zero.
    /// Pillow reads 32-bit masks that are all zero, alpha included, as BGRA; alpha is kept for
    /// 32-bit pixels only.
    init(r: UInt32, g: UInt32, b: UInt32, a: UInt32, bits: Int) throws {
        if bits == 32 && r == 0 && g == 0 && b == 0 && a == 0 {
            self.init(r: BitField(0xFF0000), g: BitField(0xFF00), b: BitField(0xFF), a: BitField(0xFF00_0000))
            return
        }
        func hex(_ m: UInt32) -> String { "0x" + String(m, radix: 16) }
        // The alpha mask of 16 and 24-bit pixels is not read at all (Pillow does not look at it).
        let a = bits == 32 ? a : 0
        guard r | g | b != 0 else {
            throw ImgConvError(.corruptInput, "BMP bit-field masks of red, green and blue are all zero")
        }
        let all = [r, g, b, a]
        for m in all where m != 0 {
            guard bits == 32 || m >> UInt32(bits) == 0 else {
                throw ImgConvError(.corruptInput, "BMP bit-field mask \(hex(m)) does not fit \(bits)-bit pixels")
            }
            let run = m >> UInt32(m.trailingZeroBitCount)
            guard run & (run &+ 1) == 0 else {
                throw ImgConvError(.corruptInput, "BMP bit-field mask \(hex(m)) is not one run of bits")
            }
        }
        for i in 0..<4 {
            for j in (i + 1)..<4 where all[i] & all[j] != 0 {
                throw ImgConvError(.corruptInput, "BMP bit-field masks \(hex(all[i])) and \(hex(all[j])) overlap")
            }
        }
        self.init(r: BitField(r), g: BitField(g), b: BitField(b), a: a != 0 ? BitField(a) : nil)
    }

    @inline(__always) func store(_ p: UInt32, _ dst: UnsafeMutableBufferPointer<UInt8>, _ at: Int) {
        dst[at] = r.value(p)
        dst[at + 1] = g.value(p)
        dst[at + 2] = b.value(p)
        if let a { dst[at + 3] = a.value(p) }
    }
}
