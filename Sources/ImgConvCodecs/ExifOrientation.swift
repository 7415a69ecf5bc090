import CZlib

/// Reads the EXIF Orientation tag (0x0112) without trusting any offset in the file: every read is
/// bounds-checked, and anything malformed means "no rotation" (1). Values outside 1...8 (0 is
/// common) also mean no rotation.
public enum ExifOrientation {
    /// Orientation from a JPEG as Pillow's `ImageOps.exif_transpose` finds it: the first APP1
    /// `Exif\0\0` segment, else (when it holds no Orientation tag) XMP's `tiff:Orientation` in
    /// the last APP1 XMP segment; segments before the first scan.
    public static func fromJPEG(_ d: [UInt8]) -> Int {
        jpegTag(d).map { (1...8).contains($0) ? $0 : 1 } ?? 1
    }

    /// The Orientation value a JPEG states (EXIF, else XMP), as stored: nil when it states none.
    /// A value outside 1...8 is malformed (`fromJPEG` reads it as 1; `check` reports it).
    public static func jpegTag(_ d: [UInt8]) -> Int? {
        guard d.count >= 4, d[0] == 0xFF, d[1] == 0xD8 else { return nil }
        let xmpHeader = Array("http://ns.adobe.com/xap/1.0/".utf8) + [0]
        var exif: ArraySlice<UInt8>?, xmp: ArraySlice<UInt8>?
        var i = 2
        segments: while i + 4 <= d.count {
            guard d[i] == 0xFF else { break }
            let marker = d[i + 1]
            if marker == 0xFF { i += 1; continue }                       // fill byte
            if marker == 0x01 || (0xD0...0xD7).contains(marker) { i += 2; continue }  // no length
            if marker == 0xDA || marker == 0xD9 { break }                // scan or end
            let length = Int(d[i + 2]) << 8 | Int(d[i + 3])
            guard length >= 2, i + 2 + length <= d.count else { break }
            let body = d[(i + 4)..<(i + 2 + length)]
            if marker == 0xE1 {
                if exif == nil, body.starts(with: [0x45, 0x78, 0x69, 0x66, 0, 0]) {  // "Exif\0\0"
                    exif = body.dropFirst(6)
                } else if body.starts(with: xmpHeader) {
                    xmp = body.dropFirst(xmpHeader.count)
                }
            }
            i += 2 + length
            continue segments
        }
        var tag = exif.flatMap { orientationTag($0) }
        if tag == nil, let xmp { tag = xmpOrientation(Array(xmp)) }
        return tag
    }

    /// Orientation from a PNG held in memory (see `fromPNG(read:)`).
    public static func fromPNG(_ d: [UInt8]) -> Int {
        // Chunk headers are looked at in place (one file's PNG header costs no allocation).
        fromPNG(head: { offset in
            offset >= 0 && offset <= d.count - 8 ? chunkHead(d[offset..<(offset + 8)]) : nil
        }, body: { offset, count in
            offset >= 0 && offset <= d.count ? Array(d[offset..<min(d.count, offset + count)]) : []
        })
    }

    /// Orientation from a PNG as Pillow's `ImageOps.exif_transpose` finds it, from chunks
    /// anywhere in the file (before or after the image data): an `eXIf` chunk (the last one,
    /// as Pillow keeps it), else ImageMagick's "Raw profile type exif" text chunk (`tEXt`,
    /// `zTXt` or `iTXt`: hex digits after three header lines); when neither holds the tag, XMP's
    /// `tiff:Orientation` (a text chunk "XML:com.adobe.xmp"). `read(offset, count)` gives
    /// the file's bytes (fewer at its end): chunk headers are read one by one and the image
    /// data skipped, so a file on disk is not read whole; text chunks over 1 MiB are ignored.
    public static func fromPNG(read: (Int, Int) -> [UInt8]) -> Int {
        fromPNG(head: { offset in
            let h = read(offset, 8)
            return h.count == 8 ? chunkHead(h[...]) : nil
        }, body: read)
    }

    /// A chunk's length and type (its 4 type bytes, big-endian) from its 8 header bytes.
    private static func chunkHead(_ h: ArraySlice<UInt8>) -> (length: Int, type: UInt32) {
        let b = h.startIndex
        let length = Int(h[b]) << 24 | Int(h[b + 1]) << 16 | Int(h[b + 2]) << 8 | Int(h[b + 3])
        let type = UInt32(h[b + 4]) << 24 | UInt32(h[b + 5]) << 16 | UInt32(h[b + 6]) << 8 | UInt32(h[b + 7])
        return (length, type)
    }

    private static let iend: UInt32 = 0x4945_4E44, exifChunk: UInt32 = 0x6558_4966
    private static let tEXt: UInt32 = 0x7445_5874, zTXt: UInt32 = 0x7A54_5874, iTXt: UInt32 = 0x6954_5874

    private static func fromPNG(head: (Int) -> (length: Int, type: UInt32)?, body read: (Int, Int) -> [UInt8]) -> Int {
        var exif: [UInt8]?, rawProfile: [UInt8]?, xmp: [UInt8]?
        var offset = 8
        for _ in 0..<1_000_000 {
            guard let (length, type) = head(offset) else { break }
            if type == iend { break }
            if (type == exifChunk || type == tEXt || type == zTXt || type == iTXt) && length <= 1 << 20 {
                let body = read(offset + 8, length)
                guard body.count == length else { break }
                if type == exifChunk {
                    exif = body
                } else if let (keyword, text) = pngText(type, body) {
                    if keyword == "Raw profile type exif", rawProfile == nil { rawProfile = text }
                    if keyword == "XML:com.adobe.xmp", xmp == nil { xmp = text }
                }
            }
            offset += 12 + length
        }
        if exif == nil, let text = rawProfile { exif = hexProfile(text) }
        var tag = exif.flatMap { orientationTag(tiffBlock($0[...])) }
        if tag == nil, let xmp { tag = xmpOrientation(xmp) }
        return tag.map { (1...8).contains($0) ? $0 : 1 } ?? 1
    }

    /// Orientation of a WebP from its EXIF chunk's payload (after one or two `Exif\0\0`
    /// prefixes, which Pillow skips), or, when that holds no Orientation tag, from its XMP
    /// chunk's `tiff:Orientation`, as Pillow's `getexif` reads it.
    public static func fromWebP(exif: [UInt8]?, xmp: [UInt8]?) -> Int {
        var tag: Int?
        if var e = exif?[...] {
            for _ in 0..<2 where e.starts(with: [0x45, 0x78, 0x69, 0x66, 0, 0]) { e = e.dropFirst(6) }
            tag = orientationTag(e)
        }
        if tag == nil, let xmp { tag = xmpOrientation(xmp) }
        return tag.map { (1...8).contains($0) ? $0 : 1 } ?? 1
    }

    /// The keyword and text of a PNG text chunk (`zTXt` and compressed `iTXt` inflated, at most
    /// 1 MiB), or nil when malformed.
    private static func pngText(_ type: UInt32, _ body: [UInt8]) -> (String, [UInt8])? {
        guard let nul = body.firstIndex(of: 0), nul <= 79 else { return nil }
        let keyword = String(decoding: body[..<nul], as: UTF8.self)
        var rest = body[(nul + 1)...]
        switch type {
        case tEXt: return (keyword, Array(rest))
        case zTXt:
            guard rest.first == 0 else { return nil }
            return inflate(rest.dropFirst()).map { (keyword, $0) }
        default:  // iTXt: compression flag, method, language tag NUL, translated keyword NUL, text
            guard rest.count >= 2 else { return nil }
            let compressed = rest[rest.startIndex] == 1
            rest = rest.dropFirst(2)
            guard let l = rest.firstIndex(of: 0) else { return nil }
            rest = rest[(l + 1)...]
            guard let t = rest.firstIndex(of: 0) else { return nil }
            rest = rest[(t + 1)...]
            return compressed ? inflate(rest).map { (keyword, $0) } : (keyword, Array(rest))
        }
    }

    /// ImageMagick's raw profile: "\nexif\n    <length>\n" then hex digits over lines.
    private static func hexProfile(_ text: [UInt8]) -> [UInt8]? {
        let lines = text.split(separator: 0x0A, omittingEmptySubsequences: false)
        guard lines.count > 3 else { return nil }
        var bytes: [UInt8] = [], high: UInt8?
        for c in lines.dropFirst(3).joined() {
            let v: UInt8
            switch c {
            case 0x30...0x39: v = c - 0x30
            case 0x61...0x66: v = c - 0x61 + 10
            case 0x41...0x46: v = c - 0x41 + 10
            case 0x20, 0x09, 0x0D: continue
            default: return nil
            }
            if let h = high { bytes.append(h << 4 | v); high = nil } else { high = v }
        }
        return bytes
    }

    /// XMP's `tiff:Orientation="N"` or `<tiff:Orientation>N`, as Pillow's pattern finds it.
    static func xmpOrientation(_ xmp: [UInt8]) -> Int? {
        let key = Array("tiff:Orientation".utf8)
        var i = 0
        while i + key.count + 2 <= xmp.count {
            if xmp[i] == key[0], Array(xmp[i..<(i + key.count)]) == key {
                let j = i + key.count
                if xmp[j] == 0x3E, (0x30...0x39).contains(xmp[j + 1]) { return Int(xmp[j + 1] - 0x30) }
                if j + 2 < xmp.count, xmp[j] == 0x3D, xmp[j + 1] == 0x22, (0x30...0x39).contains(xmp[j + 2]) {
                    return Int(xmp[j + 2] - 0x30)
                }
            }
            i += 1
        }
        return nil
    }

    /// A zlib stream inflated, at most 1 MiB; nil when malformed or longer.
    private static func inflate(_ data: ArraySlice<UInt8>) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: 1 << 20)
        var outLength = uLongf(out.count)
        let input = Array(data)
        let rc = out.withUnsafeMutableBufferPointer { o in
            input.withUnsafeBufferPointer { i in uncompress(o.baseAddress, &outLength, i.baseAddress, uLong(i.count)) }
        }
        guard rc == Z_OK else { return nil }
        return Array(out[..<Int(outLength)])
    }

    /// Orientation from a TIFF-structured EXIF block (`II*\0` or `MM\0*`, then IFD0).
    public static func fromTIFFBlock(_ block: ArraySlice<UInt8>) -> Int {
        orientationTag(block).map { (1...8).contains($0) ? $0 : 1 } ?? 1
    }

    /// The block after an optional "Exif\0\0" header (as Pillow's `Exif.load` skips it).
    static func tiffBlock(_ data: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        data.starts(with: [0x45, 0x78, 0x69, 0x66, 0, 0]) ? data.dropFirst(6) : data
    }

    /// The Orientation tag's value in a TIFF-structured EXIF block; nil when the block has no such
    /// tag (or is malformed), 1 for a tag that is not a SHORT (present, so no XMP is looked at).
    static func orientationTag(_ block: ArraySlice<UInt8>) -> Int? {
        let b = Array(block)
        guard b.count >= 8 else { return nil }
        let little: Bool
        switch (b[0], b[1]) {
        case (0x49, 0x49): little = true
        case (0x4D, 0x4D): little = false
        default: return nil
        }
        func u16(_ o: Int) -> Int? {
            guard o >= 0, o + 2 <= b.count else { return nil }
            return little ? Int(b[o]) | Int(b[o + 1]) << 8 : Int(b[o]) << 8 | Int(b[o + 1])
        }
        func u32(_ o: Int) -> Int? {
            guard let lo = u16(little ? o : o + 2), let hi = u16(little ? o + 2 : o) else { return nil }
            return hi << 16 | lo
        }
        guard u16(2) == 42, let ifd = u32(4), let count = u16(ifd) else { return nil }
        for k in 0..<count {
            let entry = ifd + 2 + k * 12
            guard let tag = u16(entry) else { return nil }
            if tag == 0x0112 {
                guard u16(entry + 2) == 3, let value = u16(entry + 8) else { return 1 }
                return value
            }
        }
        return nil
    }
}
