import CShims
import ImgConvCore

/// TIFF through libtiff's strip and tile reads (raw samples; libtiff's 8-bit RGBA convenience
/// path would flip, premultiply and narrow them). What comes out:
/// - unsigned 1, 2 and 4-bit samples are widened to 8 bits as Pillow does (x255, x85, x17);
///   other depths up to 8 bits keep their values in uint8, 9-16 bits in uint16 (a 12-bit image
///   holds 0...4095, as Pillow and tifffile give it);
/// - 8 and 16-bit signed integers, 17-24-bit unsigned ones and 16 and 32-bit floats become
///   float32 (exact); 25-32-bit unsigned samples stay uint32, 32-bit signed ones int32 and
///   64-bit floats float64, so that every value is kept; 64-bit integers become float64, values
///   beyond 2^53 refused rather than rounded;
/// - min-is-white is inverted; palette images expand to RGB; 8-bit CMYK converts to RGB as
///   Pillow's `convert('RGB')`; JPEG-compressed YCbCr is converted by libtiff;
/// - gray and RGB keep an alpha channel when the first extra sample is alpha; 8-bit associated
///   (premultiplied) alpha is divided back as Pillow's RGBa to RGBA does, deeper samples stay
///   as stored (as tifffile reads them); other extra samples are dropped;
/// - YCbCr not in JPEG (subsampled, uncompressed) goes through libtiff's RGBA interface as Pillow
///   reads it; `SampleFormat` 4 (void) is read as unsigned; CIE L*a*b* is refused by name;
/// - palettes of 16-bit indices expand like 8-bit ones (colormap entries narrowed as Pillow does;
///   Pillow itself cannot open such files);
/// - 16-bit CMYK is narrowed to 8 bits as Pillow reads it, with a warning in the manifest;
/// - the Orientation tag is reported so it can be applied like EXIF orientation.
public struct TIFFDecoder: ImageDecoder {
    /// Which page (directory) to decode.
    public var page: Int
    /// Checked against the raw samples, which are read whole before unused ones are dropped.
    public var limits: DecodeLimits

    public init(page: Int = 0, limits: DecodeLimits = DecodeLimits()) {
        self.page = page
        self.limits = limits
    }

    private func info(_ data: [UInt8]) throws -> imc_tiff_info {
        var info = imc_tiff_info()
        let (rc, message) = withCErrorBuffer { e, n in
            data.withUnsafeBufferPointer { buf in imc_tiff_read_info(buf.baseAddress, buf.count, Int32(page), &info, e, n) }
        }
        guard rc == 0 else { throw ImgConvError.library("libtiff", message ?? unknownCError) }
        return info
    }

    private enum Kind { case unsigned, signed, float }

    /// How raw samples become output samples.
    private struct Layout {
        var bits: Int
        var kind: Kind
        var storedSamples: Int
        var outChannels: Int
        var depth: SampleDepth
        var invert: Bool
        var palette: Bool
        var cmyk: Bool
        /// Factor for 1/2/4-bit samples (Pillow's widening), else 1.
        var widen: Int
        /// Read through libtiff's RGBA interface (old-style JPEG, YCbCr not in JPEG), as Pillow does.
        var rgba = false
        /// The alpha channel is associated (colours premultiplied): 8-bit samples are divided
        /// back as Pillow's RGBa to RGBA does.
        var premultiplied = false
        var storedBytes: Int { bits <= 8 ? 1 : bits <= 16 ? 2 : bits <= 32 ? 4 : 8 }
    }

    private func layout(_ i: imc_tiff_info) throws -> Layout {
        let spp = Int(i.samples_per_pixel)
        let bits = Int(i.bits_per_sample)
        let kind: Kind
        switch i.sample_format {
        case 1: kind = .unsigned
        case 2: kind = .signed
        case 3: kind = .float
        case 4: kind = .unsigned   // "void": undefined data, read as unsigned as Pillow and tifffile do
        default: throw ImgConvError(.unsupported, "TIFF sample format \(i.sample_format) is not supported")
        }
        guard (1...32).contains(bits) || bits == 64 else {
            throw ImgConvError(.unsupported, "TIFF with \(bits)-bit samples is not supported")
        }
        if kind == .float && ![16, 32, 64].contains(bits) {
            throw ImgConvError(.unsupported, "TIFF with \(bits)-bit floating-point samples is not supported")
        }
        if kind == .signed && ![8, 16, 32, 64].contains(bits) {
            throw ImgConvError(.unsupported, "TIFF with \(bits)-bit signed samples is not supported")
        }
        let depth: SampleDepth
        switch kind {
        case .unsigned: depth = bits <= 8 ? .eight : bits <= 16 ? .sixteen : bits <= 24 ? .float32 : bits <= 32 ? .uint32 : .float64
        case .signed: depth = bits <= 16 ? .float32 : bits == 32 ? .int32 : .float64
        case .float: depth = bits <= 32 ? .float32 : .float64
        }
        let widen = kind == .unsigned ? [1: 255, 2: 85, 4: 17][bits] ?? 1 : 1
        let alpha = i.extra_samples > 0 && (i.extra_kind == 1 || i.extra_kind == 2)
        var l = Layout(bits: bits, kind: kind, storedSamples: spp, outChannels: 1, depth: depth,
                       invert: false, palette: false, cmyk: false, widen: widen)
        switch (i.photometric, spp) {
        case (0, _), (1, _):
            if i.photometric == 0 && kind != .unsigned {
                throw ImgConvError(.unsupported, "min-is-white TIFF with \(kind == .float ? "floating-point" : "signed") samples is not supported")
            }
            l.invert = i.photometric == 0
            l.outChannels = spp >= 2 && alpha ? 2 : 1
        case (2, 3...):
            l.outChannels = spp >= 4 && alpha ? 4 : 3
        case (6, 3...) where i.compression == 7:  // JPEG: libtiff converts YCbCr to RGB
            l.outChannels = 3
        case (6, 3...) where i.compression == 6:  // old-style JPEG: only libtiff's RGBA interface reads it
            l.outChannels = 3
            l.depth = .eight
            l.rgba = true
        case (6, 3) where kind == .unsigned && bits == 8:
            // YCbCr stored as such (subsampled, uncompressed or another codec): libtiff's RGBA
            // interface converts it, as Pillow reads it.
            l.outChannels = 3
            l.depth = .eight
            l.rgba = true
        case (8, _), (9, _), (10, _):
            throw ImgConvError(.unsupported, "TIFF in CIE L*a*b* (photometric interpretation \(i.photometric)) is not supported")
        case (3, 1) where kind == .unsigned && (bits <= 8 || bits == 16):
            l = Layout(bits: bits, kind: kind, storedSamples: 1, outChannels: 3, depth: .eight,
                       invert: false, palette: true, cmyk: false, widen: 1)
        case (5, 4...) where i.inkset == 1 && (bits == 8 || bits == 16) && kind == .unsigned:
            // 16-bit CMYK is narrowed to 8 bits first, as Pillow reads it.
            l.cmyk = true
            l.outChannels = 3
            l.depth = .eight
        default:
            throw ImgConvError(.unsupported, "TIFF photometric interpretation \(i.photometric) with \(spp) samples per pixel is not supported")
        }
        l.premultiplied = i.extra_kind == 1 && (l.outChannels == 2 || l.outChannels == 4) && l.depth == .eight && !l.palette
        return l
    }

    /// Bytes of the raw samples of the whole image. A header may claim up to 65,535 samples per
    /// pixel, all of which are read: they must fit the limits, not only the channels kept.
    private func rawSize(_ i: imc_tiff_info, _ l: Layout) throws -> Int {
        try limits.check(width: Int(i.width), height: Int(i.height), channels: l.outChannels, depth: l.depth)
        guard let size = checkedByteCount([Int(i.width), Int(i.height), l.storedSamples], elementSize: l.storedBytes),
              size <= limits.maxBytes else {
            throw ImgConvError(.limitExceeded, "\(i.width)x\(i.height) pixels of \(l.storedSamples) samples (\(l.bits)-bit) need \(limits.overBytes)")
        }
        return size
    }

    public func readHeader(_ data: [UInt8]) throws -> ImageHeader {
        try header(try info(data))
    }

    /// The header of a TIFF read through the file's descriptor: only the header and directories
    /// are read, wherever in the file they lie.
    public func readHeader(file: InputFile) throws -> ImageHeader {
        var info = imc_tiff_info()
        let (rc, message) = withCErrorBuffer { e, n in imc_tiff_read_info_fd(file.fd, UInt64(file.size), Int32(page), &info, e, n) }
        guard rc == 0 else { throw ImgConvError.library("libtiff", message ?? unknownCError) }
        return try header(info)
    }

    private func header(_ i: imc_tiff_info) throws -> ImageHeader {
        let l = try layout(i)
        _ = try rawSize(i, l)
        return ImageHeader(width: Int(i.width), height: Int(i.height), channels: l.outChannels, depth: l.depth,
                           orientation: (1...8).contains(Int(i.orientation)) ? Int(i.orientation) : 1,
                           pages: max(1, Int(i.directories)))
    }

    public func decode(_ data: [UInt8], header: ImageHeader) throws -> PixelBuffer {
        let i = try info(data)
        let l = try layout(i)
        guard Int(i.width) == header.width, Int(i.height) == header.height,
              l.outChannels == header.channels, l.depth == header.depth else {
            throw ImgConvError(.corruptInput, "header changed between reads")
        }
        let count = header.width * header.height
        if l.rgba { return try decodeRGBA(data, header: header) }
        var raw = [UInt8](repeating: 0, count: try rawSize(i, l))
        let (rc, message) = withCErrorBuffer { e, n in
            data.withUnsafeBufferPointer { src in
                raw.withUnsafeMutableBufferPointer { dst in
                    imc_tiff_decode(src.baseAddress, src.count, Int32(page), dst.baseAddress, dst.count, e, n)
                }
            }
        }
        guard rc == 0 else { throw ImgConvError.library("libtiff", message ?? unknownCError) }
        let pixels: [UInt8]
        if l.palette {
            pixels = try expandPalette(raw, data: data, count: count, bits: l.bits)
        } else if l.cmyk {
            pixels = cmykToRGB(l.bits == 16 ? highBytes(raw) : raw, count: count, stored: l.storedSamples)
        } else {
            pixels = try convert(raw, count: count, layout: l)
        }
        var image = PixelBuffer(width: header.width, height: header.height, channels: l.outChannels, depth: l.depth,
                                bytes: l.premultiplied ? Self.unpremultiplied(pixels, channels: l.outChannels) : pixels)
        if l.cmyk && l.bits == 16 {
            image.warning = "16-bit CMYK narrowed to 8 bits before its conversion to RGB, as Pillow reads it"
        }
        return image
    }

    /// Keeps the leading output channels, widens or converts samples, inverts min-is-white.
    private func convert(_ raw: [UInt8], count: Int, layout l: Layout) throws -> [UInt8] {
        let n = count * l.outChannels
        var out = [UInt8](repeating: 0, count: n * l.depth.byteSize)
        let maxStored = l.bits >= 32 ? UInt32.max : UInt32((1 << l.bits) - 1)
        try raw.withUnsafeBytes { src in
            try out.withUnsafeMutableBytes { dst in
                for p in 0..<count {
                    for c in 0..<l.outChannels {
                        let si = p * l.storedSamples + c
                        let di = p * l.outChannels + c
                        let gray = c == 0 && l.outChannels <= 2
                        switch (l.kind, l.depth) {
                        case (.unsigned, .eight):
                            var v = UInt32(src.load(fromByteOffset: si, as: UInt8.self))
                            if l.invert && gray { v = maxStored &- min(v, maxStored) }
                            dst.storeBytes(of: UInt8(truncatingIfNeeded: v * UInt32(l.widen)), toByteOffset: di, as: UInt8.self)
                        case (.unsigned, .sixteen):
                            var v = UInt32(src.load(fromByteOffset: si * 2, as: UInt16.self))
                            if l.invert && gray { v = maxStored &- min(v, maxStored) }
                            dst.storeBytes(of: UInt16(truncatingIfNeeded: v), toByteOffset: di * 2, as: UInt16.self)
                        case (.unsigned, .float64):  // 64 bits: exact in float64 up to 2^53
                            var v = src.load(fromByteOffset: si * 8, as: UInt64.self)
                            if l.invert && gray { v = UInt64.max - v }
                            guard v <= 1 << 53 else { throw ImgConvError(.unsupported, "sample value \(v) cannot be held exactly in float64") }
                            dst.storeBytes(of: Double(v), toByteOffset: di * 8, as: Double.self)
                        case (.signed, .float64):
                            let v = src.load(fromByteOffset: si * 8, as: Int64.self)
                            guard v.magnitude <= 1 << 53 else { throw ImgConvError(.unsupported, "sample value \(v) cannot be held exactly in float64") }
                            dst.storeBytes(of: Double(v), toByteOffset: di * 8, as: Double.self)
                        case (.unsigned, .uint32):
                            var v = src.load(fromByteOffset: si * 4, as: UInt32.self)
                            if l.invert && gray { v = maxStored &- min(v, maxStored) }
                            dst.storeBytes(of: v, toByteOffset: di * 4, as: UInt32.self)
                        case (.unsigned, _):  // 17 to 24 bits: exact in float32
                            var v = src.load(fromByteOffset: si * 4, as: UInt32.self)
                            if l.invert && gray { v = maxStored &- min(v, maxStored) }
                            dst.storeBytes(of: Float(v), toByteOffset: di * 4, as: Float.self)
                        case (.signed, .int32):
                            dst.storeBytes(of: src.load(fromByteOffset: si * 4, as: Int32.self), toByteOffset: di * 4, as: Int32.self)
                        case (.signed, _):  // 8 and 16 bits: exact in float32
                            let v = l.bits == 8 ? Float(src.load(fromByteOffset: si, as: Int8.self))
                                : Float(src.load(fromByteOffset: si * 2, as: Int16.self))
                            dst.storeBytes(of: v, toByteOffset: di * 4, as: Float.self)
                        case (.float, .float64):
                            dst.storeBytes(of: src.load(fromByteOffset: si * 8, as: Double.self), toByteOffset: di * 8, as: Double.self)
                        case (.float, _):
                            let f: Float = l.bits == 16 ? Float(Float16(bitPattern: src.load(fromByteOffset: si * 2, as: UInt16.self)))
                                : src.load(fromByteOffset: si * 4, as: Float.self)
                            dst.storeBytes(of: f, toByteOffset: di * 4, as: Float.self)
                        }
                    }
                }
            }
        }
        return out
    }

    private func expandPalette(_ raw: [UInt8], data: [UInt8], count: Int, bits: Int) throws -> [UInt8] {
        let entries = 1 << bits
        var r = [UInt16](repeating: 0, count: entries), g = r, b = r
        let (ok, message) = withCErrorBuffer { e, n in
            data.withUnsafeBufferPointer { src in
                imc_tiff_colormap(src.baseAddress, src.count, Int32(page), &r, &g, &b, entries, e, n)
            }
        }
        guard ok == 0 else { throw ImgConvError.library("libtiff", message ?? unknownCError) }
        // Colormaps hold 16-bit values; a few writers store 0-255, which the top byte would zero.
        let eightBit = (r + g + b).allSatisfy { $0 <= 255 }
        let shift: UInt16 = eightBit ? 0 : 8
        var out = [UInt8](repeating: 0, count: count * 3)
        let wide = bits == 16   // 16-bit indices, read as stored (native order, as libtiff gives them)
        for p in 0..<count {
            let idx = wide ? Int(UInt16(raw[p * 2]) | UInt16(raw[p * 2 + 1]) << 8) : Int(raw[p])
            out[p * 3] = UInt8(truncatingIfNeeded: r[idx] >> shift)
            out[p * 3 + 1] = UInt8(truncatingIfNeeded: g[idx] >> shift)
            out[p * 3 + 2] = UInt8(truncatingIfNeeded: b[idx] >> shift)
        }
        return out
    }

    /// RGB from libtiff's RGBA interface (on a little-endian host the packed words hold the
    /// bytes R, G, B, A in memory order).
    private func decodeRGBA(_ data: [UInt8], header: ImageHeader) throws -> PixelBuffer {
        let count = header.width * header.height
        var raster = [UInt8](repeating: 0, count: count * 4)
        let (rc, message) = withCErrorBuffer { e, n in
            data.withUnsafeBufferPointer { src in
                raster.withUnsafeMutableBufferPointer { dst in
                    imc_tiff_decode_rgba(src.baseAddress, src.count, Int32(page), dst.baseAddress, dst.count, e, n)
                }
            }
        }
        guard rc == 0 else { throw ImgConvError.library("libtiff", message ?? unknownCError) }
        var rgb = [UInt8](repeating: 0, count: count * 3)
        for p in 0..<count {
            rgb[p * 3] = raster[p * 4]
            rgb[p * 3 + 1] = raster[p * 4 + 1]
            rgb[p * 3 + 2] = raster[p * 4 + 2]
        }
        return PixelBuffer(width: header.width, height: header.height, channels: 3, depth: .eight, bytes: rgb)
    }

    /// Colours divided by their associated alpha, as Pillow's RGBa to RGBA: 255·c / a truncated
    /// and clipped to 255; a pixel whose alpha is 0 or 255 keeps its colours.
    static func unpremultiplied(_ pixels: [UInt8], channels: Int) -> [UInt8] {
        var out = pixels
        for p in stride(from: 0, to: out.count, by: channels) {
            let a = UInt32(out[p + channels - 1])
            guard a != 0 && a != 255 else { continue }
            for c in p..<(p + channels - 1) { out[c] = UInt8(min(255, 255 * UInt32(out[c]) / a)) }
        }
        return out
    }

    /// The top 8 bits of every 16-bit sample.
    private func highBytes(_ raw: [UInt8]) -> [UInt8] {
        raw.withUnsafeBytes { buf in buf.bindMemory(to: UInt16.self).map { UInt8($0 >> 8) } }
    }

    private func cmykToRGB(_ raw: [UInt8], count: Int, stored: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count * 3)
        for p in 0..<count {
            let k = raw[p * stored + 3]
            for c in 0..<3 { out[p * 3 + c] = cmykChannel(raw[p * stored + c], k) }
        }
        return out
    }
}

/// Pillow's CMYK to RGB for one channel: (255 - K) - C * (255 - K) / 255, rounded as Pillow's
/// MULDIV255. For Adobe's inverted JPEG data (C = 255 - c, K = 255 - k) this is c * k / 255.
@inline(__always)
func cmykChannel(_ c: UInt8, _ k: UInt8) -> UInt8 {
    let nk = UInt32(255 - k)
    let t = UInt32(c) * nk + 128
    return UInt8(nk - ((t + (t >> 8)) >> 8))
}
