import CShims
import CTurboJPEG
import ImgConvCore

/// JPEG through TurboJPEG with its default (accurate) settings, the ones Pillow uses, so pixels
/// match Pillow's decode exactly. Gray stays one channel; CMYK and YCCK are decoded to CMYK and
/// converted as Pillow does for every 4-component JPEG (stored inverted, as Adobe writes them).
/// A TurboJPEG warning (e.g. a truncated file) is an error. Files whose sampling TurboJPEG 2.1
/// cannot name ("Could not determine subsampling type") go through the libjpeg API instead.
public struct JPEGDecoder: ImageDecoder {
    /// Accept images TurboJPEG decoded with a warning (a truncated download): the damaged part is
    /// gray, and the warning travels with the pixels (`PixelBuffer.warning`).
    public var allowTruncated: Bool

    public init(allowTruncated: Bool = false) { self.allowTruncated = allowTruncated }

    /// Bounds the scans of progressive files, against files made of endless scans.
    private static let flags = TJFLAG_LIMITSCANS

    private struct Handle {
        let raw: tjhandle
        init() throws {
            guard let h = tjInitDecompress() else { throw ImgConvError(.resources, "TurboJPEG: out of memory for a decompressor") }
            raw = h
        }
        func message() -> String { String(cString: tjGetErrorStr2(raw)) }
        func isWarning() -> Bool { tjGetErrorCode(raw) == TJERR_WARNING.rawValue }
    }

    private func header(_ h: Handle, _ data: [UInt8]) throws -> (width: Int, height: Int, colorspace: Int32) {
        var w: Int32 = 0, ht: Int32 = 0, sub: Int32 = 0, cs: Int32 = 0
        let rc = data.withUnsafeBufferPointer { buf in
            tjDecompressHeader3(h.raw, buf.baseAddress, UInt(buf.count), &w, &ht, &sub, &cs)
        }
        if rc != 0 && !(allowTruncated && h.isWarning() && w > 0 && ht > 0) {
            throw ImgConvError.library("TurboJPEG", h.message() + (h.isWarning() ? " " + Self.warningMark : ""))
        }
        return (Int(w), Int(ht), cs)
    }

    /// Files TurboJPEG does not take but the libjpeg API does: samplings TurboJPEG cannot name,
    /// and (unless every warning is accepted) files with a warning, which the libjpeg path
    /// accepts when every warning is "extraneous bytes before marker".
    private func needsLibjpeg(_ error: ImgConvError) -> Bool {
        error.message.contains("subsampling type") || (!allowTruncated && error.message.contains(Self.warningMark))
    }

    /// Ends the message of a TurboJPEG warning (see `header`).
    private static let warningMark = "(damaged or truncated file; --allow-truncated-jpeg accepts it)"

    public func readHeader(_ data: [UInt8]) throws -> ImageHeader {
        let h = try Handle()
        defer { tjDestroy(h.raw) }
        do {
            let (w, ht, cs) = try header(h, data)
            return ImageHeader(width: w, height: ht, channels: cs == TJCS_GRAY.rawValue ? 1 : 3, depth: .eight,
                               orientation: ExifOrientation.fromJPEG(data))
        } catch let e as ImgConvError where needsLibjpeg(e) {
            let (info, _) = try libjpeg(data, infoOnly: true, into: nil)
            return ImageHeader(width: Int(info.width), height: Int(info.height), channels: info.channels == 1 ? 1 : 3,
                               depth: .eight, orientation: ExifOrientation.fromJPEG(data))
        }
    }

    /// Decodes (or with `infoOnly` reads the header) through the libjpeg API.
    /// - Returns: the header and the warning libjpeg recovered from, if any (only with `allowTruncated`).
    private func libjpeg(_ data: [UInt8], infoOnly: Bool, into pixels: UnsafeMutableBufferPointer<UInt8>?) throws -> (imc_jpeg_info, String?) {
        var info = imc_jpeg_info()
        let (rc, message) = withCErrorBuffer { e, n in
            data.withUnsafeBufferPointer { src in
                imc_jpeg_decode(src.baseAddress, src.count, infoOnly ? 1 : 0, allowTruncated ? 1 : 2, pixels?.baseAddress,
                                pixels?.count ?? 0, &info, e, n)
            }
        }
        guard rc == 0 else { throw ImgConvError(.corruptInput, message ?? unknownCError) }
        return (info, message)
    }

    private func decodeWithLibjpeg(_ data: [UInt8], header expected: ImageHeader) throws -> PixelBuffer {
        let (info, _) = try libjpeg(data, infoOnly: true, into: nil)
        let (w, ht, n) = (Int(info.width), Int(info.height), Int(info.channels))
        guard w == expected.width, ht == expected.height else {
            throw ImgConvError(.corruptInput, "header changed between reads")
        }
        var pixels = [UInt8](repeating: 0, count: w * ht * n)
        let (_, warning) = try pixels.withUnsafeMutableBufferPointer { try libjpeg(data, infoOnly: false, into: $0) }
        if n == 4 { pixels = Self.invertedCMYKToRGB(pixels, count: w * ht) }
        var image = PixelBuffer(width: w, height: ht, channels: n == 1 ? 1 : 3, depth: .eight, bytes: pixels)
        image.warning = warning
        return image
    }

    public func decode(_ data: [UInt8], header expected: ImageHeader) throws -> PixelBuffer {
        try decode(data, header: expected, atLeast: nil)
    }

    /// The size libjpeg-turbo's DCT scaling gives for at least `minimum` (stored orientation):
    /// scale 1/8, 1/4 or 1/2 (the factors with SIMD code), or nil for a full decode.
    public static func draftScale(width: Int, height: Int, minimum: (width: Int, height: Int)) -> (width: Int, height: Int)? {
        // As Pillow's `draft`: the largest of 8, 4, 2 that divides both sides at least once more
        // than the target (width >= d x target), so the scaled image is never below the target.
        for denominator in [8, 4, 2] where width >= denominator * minimum.width && height >= denominator * minimum.height {
            return ((width + denominator - 1) / denominator, (height + denominator - 1) / denominator)
        }
        return nil
    }

    /// Decodes, with DCT-domain downscaling ("draft mode") when `atLeast` allows a 1/2, 1/4 or
    /// 1/8 scale: faster, and slightly different from a full decode followed by a resize.
    public func decode(_ data: [UInt8], header expected: ImageHeader, atLeast: (width: Int, height: Int)?) throws -> PixelBuffer {
        let h = try Handle()
        defer { tjDestroy(h.raw) }
        let (w, ht, cs): (Int, Int, Int32)
        do {
            (w, ht, cs) = try header(h, data)
        } catch let e as ImgConvError where needsLibjpeg(e) {
            return try decodeWithLibjpeg(data, header: expected)
        }
        guard w == expected.width, ht == expected.height else {
            throw ImgConvError(.corruptInput, "header changed between reads")
        }
        let cmyk = cs == TJCS_CMYK.rawValue || cs == TJCS_YCCK.rawValue
        let format: TJPF = cs == TJCS_GRAY.rawValue ? TJPF_GRAY : cmyk ? TJPF_CMYK : TJPF_RGB
        let decodedChannels = cs == TJCS_GRAY.rawValue ? 1 : cmyk ? 4 : 3
        let scaled = atLeast.flatMap { Self.draftScale(width: w, height: ht, minimum: $0) }
        let (ow, oh) = scaled ?? (w, ht)
        func decompress(into pixels: inout [UInt8]) -> Int32 {
            data.withUnsafeBufferPointer { src in
                pixels.withUnsafeMutableBufferPointer { dst in
                    // TurboJPEG picks the largest scaling factor whose output fits width x height.
                    tjDecompress2(h.raw, src.baseAddress, UInt(src.count), dst.baseAddress,
                                  Int32(ow), 0, Int32(oh), format.rawValue, Self.flags)
                }
            }
        }
        // Not zeroed first: a decode that succeeds writes every pixel.
        let count = ow * oh * decodedChannels
        var pixels = [UInt8](unsafeUninitializedCapacity: count) { _, n in n = count }
        let rc = decompress(into: &pixels)
        var warning: String?
        if rc != 0 {
            let reason = h.message()
            guard allowTruncated && h.isWarning() else {
                // The libjpeg path tells an "extraneous bytes" warning from the others.
                if h.isWarning() { return try decodeWithLibjpeg(data, header: expected) }
                throw ImgConvError.library("TurboJPEG", reason)
            }
            // A decode that stopped early may not have written every pixel: again into zeros,
            // so that what it left is zeros, every time.
            pixels = [UInt8](repeating: 0, count: count)
            _ = decompress(into: &pixels)
            warning = "TurboJPEG: \(reason)"
        }
        if cmyk {
            pixels = Self.invertedCMYKToRGB(pixels, count: ow * oh)
        }
        var image = PixelBuffer(width: ow, height: oh, channels: cmyk ? 3 : decodedChannels, depth: .eight, bytes: pixels)
        image.warning = warning
        return image
    }

    /// Pillow's conversion of an Adobe (inverted) CMYK JPEG to RGB: R = C·K/255 (rounded), etc.,
    /// computed on the stored bytes.
    static func invertedCMYKToRGB(_ cmyk: [UInt8], count: Int) -> [UInt8] {
        var rgb = [UInt8](repeating: 0, count: count * 3)
        for i in 0..<count {
            let k = 255 - cmyk[i * 4 + 3]
            for c in 0..<3 { rgb[i * 3 + c] = cmykChannel(255 - cmyk[i * 4 + c], k) }
        }
        return rgb
    }
}
