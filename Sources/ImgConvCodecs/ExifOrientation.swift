/// Reads the EXIF Orientation tag (0x0112) without trusting any offset in the file: every read is
/// bounds-checked, and anything malformed means "no rotation" (1). Values outside 1...8 (0 is
/// common) also mean no rotation.
public enum ExifOrientation {
    /// Orientation from a JPEG's first APP1 `Exif\0\0` segment (segments before the first scan).
    public static func fromJPEG(_ d: [UInt8]) -> Int {
        guard d.count >= 4, d[0] == 0xFF, d[1] == 0xD8 else { return 1 }
        var i = 2
        while i + 4 <= d.count {
            guard d[i] == 0xFF else { return 1 }
            let marker = d[i + 1]
            if marker == 0xFF { i += 1; continue }                       // fill byte
            if marker == 0x01 || (0xD0...0xD7).contains(marker) { i += 2; continue }  // no length
            if marker == 0xDA || marker == 0xD9 { return 1 }             // scan or end: no EXIF
            let length = Int(d[i + 2]) << 8 | Int(d[i + 3])
            guard length >= 2, i + 2 + length <= d.count else { return 1 }
            if marker == 0xE1, length >= 8,
               Array(d[(i + 4)..<(i + 10)]) == [0x45, 0x78, 0x69, 0x66, 0, 0] {  // "Exif\0\0"
                return fromTIFFBlock(d[(i + 10)..<(i + 2 + length)])
            }
            i += 2 + length
        }
        return 1
    }

    /// Orientation from a PNG's `eXIf` chunk, when it comes before the image data.
    public static func fromPNG(_ d: [UInt8]) -> Int {
        var i = 8
        while i + 12 <= d.count {
            let length = Int(d[i]) << 24 | Int(d[i + 1]) << 16 | Int(d[i + 2]) << 8 | Int(d[i + 3])
            let type = Array(d[(i + 4)..<(i + 8)])
            if type == Array("IDAT".utf8) || type == Array("IEND".utf8) { return 1 }
            guard length >= 0, i + 12 + length <= d.count else { return 1 }
            if type == Array("eXIf".utf8) { return fromTIFFBlock(d[(i + 8)..<(i + 8 + length)]) }
            i += 12 + length
        }
        return 1
    }

    /// Orientation of a WebP from its EXIF chunk's payload (after one or two `Exif\0\0`
    /// prefixes, which Pillow skips), or, when that holds no Orientation tag, from its XMP
    /// chunk's `tiff:Orientation="N"` or `<tiff:Orientation>N<`, as Pillow's `getexif` reads it.
    public static func fromWebP(exif: [UInt8]?, xmp: [UInt8]?) -> Int {
        if var e = exif?[...] {
            let prefix = Array("Exif\0\0".utf8)
            for _ in 0..<2 where e.starts(with: prefix) { e = e.dropFirst(prefix.count) }
            if let value = tagValue(e) { return (1...8).contains(value) ? value : 1 }
        }
        guard let xmp else { return 1 }
        let key = Array("tiff:Orientation".utf8)
        var i = 0
        while i + key.count + 2 <= xmp.count {
            if xmp[i] == key[0], xmp[i..<(i + key.count)].elementsEqual(key) {
                var j = i + key.count
                if xmp[j] == UInt8(ascii: "=") && j + 2 < xmp.count && xmp[j + 1] == UInt8(ascii: "\"") { j += 2 }
                else if xmp[j] == UInt8(ascii: ">") { j += 1 }
                else { i += 1; continue }
                if j < xmp.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(xmp[j]) {
                    let value = Int(xmp[j] - UInt8(ascii: "0"))
                    return (1...8).contains(value) ? value : 1
                }
            }
            i += 1
        }
        return 1
    }

    /// Orientation from a TIFF-structured EXIF block (`II*\0` or `MM\0*`, then IFD0).
    public static func fromTIFFBlock(_ block: ArraySlice<UInt8>) -> Int {
        guard let value = tagValue(block) else { return 1 }
        return (1...8).contains(value) ? value : 1
    }

    /// The Orientation tag's value in a TIFF-structured block; nil when the block has none (or
    /// is malformed); 1 for a tag that is not a SHORT.
    static func tagValue(_ block: ArraySlice<UInt8>) -> Int? {
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
