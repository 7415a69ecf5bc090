import ImgConvCore

/// The decoder registry: sniffs, checks limits, and decodes.
public struct Decoders: Sendable {
    public var limits: DecodeLimits

    public init(limits: DecodeLimits = DecodeLimits()) { self.limits = limits }

    public func decoder(for format: ImageFormat) -> ImageDecoder? {
        switch format {
        case .png: return PNGDecoder()
        case .jpeg: return JPEGDecoder()
        case .tiff: return TIFFDecoder()
        default: return nil
        }
    }

    /// Header of an image held in memory, checked against the limits.
    /// - Throws: `ImgConvError` (`.unsupported` for formats without a decoder).
    public func header(_ data: [UInt8], format: ImageFormat) throws -> ImageHeader {
        guard let decoder = decoder(for: format) else {
            throw ImgConvError(.unsupported, "\(format.rawValue.uppercased()) files are not supported")
        }
        let h = try decoder.readHeader(data)
        try limits.check(width: h.width, height: h.height, channels: h.channels, depth: h.depth)
        return h
    }

    /// Decodes an image held in memory.
    /// - Throws: `ImgConvError` without a path; the caller names the file.
    public func decode(_ data: [UInt8]) throws -> (PixelBuffer, ImageFormat) {
        guard let format = ImageFormat.sniff(data[...]) else {
            throw ImgConvError(.unsupported, "not a recognised image format")
        }
        let h = try header(data, format: format)
        let image = try decoder(for: format)!.decode(data, header: h)
        return (image, format)
    }
}

/// A C error buffer for the shims, turned into a Swift string.
struct CErrorBuffer {
    var bytes = [CChar](repeating: 0, count: 512)
    var text: String {
        let s = bytes.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        return s.isEmpty ? "unknown error" : s
    }
}
