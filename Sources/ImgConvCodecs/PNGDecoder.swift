import CShims
import ImgConvCore

/// PNG through libpng's low-level API (stored sample values: gamma and colour chunks are not
/// applied). Palette and tRNS expand to RGB/RGBA, 1/2/4-bit gray widens to 8 bits as Pillow
/// scales it, 16-bit samples stay 16-bit.
public struct PNGDecoder: ImageDecoder {
    public init() {}

    private func info(_ data: [UInt8]) throws -> imc_png_info {
        var info = imc_png_info()
        let (rc, message) = withCErrorBuffer { e, n in
            data.withUnsafeBufferPointer { buf in imc_png_read_info(buf.baseAddress, buf.count, &info, e, n) }
        }
        guard rc == 0 else { throw ImgConvError.library("libpng", message ?? unknownCError) }
        return info
    }

    public func readHeader(_ data: [UInt8]) throws -> ImageHeader {
        header(try info(data), data)
    }

    /// The header, with libpng's reader kept after it for `decode(_:header:reading:)`: a file
    /// read in one pass has its header parsed once.
    public func readHeaderKeepingReader(_ data: [UInt8]) throws -> (ImageHeader, PNGReading) {
        var info = imc_png_info()
        let (reader, message) = withCErrorBuffer { e, n in
            data.withUnsafeBufferPointer { buf in imc_png_open(buf.baseAddress, buf.count, &info, e, n) }
        }
        guard let reader else { throw ImgConvError.library("libpng", message ?? unknownCError) }
        let reading = PNGReading(reader)
        return (header(info, data), reading)
    }

    private func header(_ i: imc_png_info, _ data: [UInt8]) -> ImageHeader {
        ImageHeader(width: Int(i.width), height: Int(i.height), channels: Int(i.out_channels),
                    depth: i.out_bytes == 2 ? .sixteen : .eight, orientation: ExifOrientation.fromPNG(data))
    }

    public func decode(_ data: [UInt8], header: ImageHeader) throws -> PixelBuffer {
        try decode(data, header: header, reading: nil)
    }

    /// Decodes `data`, the whole file; with `reading` (from `readHeaderKeepingReader` on the
    /// file's first bytes, which `data` starts with) from where its header ended. Takes
    /// `reading`'s reader, whatever the result.
    public func decode(_ data: [UInt8], header: ImageHeader, reading: PNGReading?) throws -> PixelBuffer {
        var info = imc_png_info()
        info.width = UInt32(header.width)
        info.height = UInt32(header.height)
        info.out_channels = Int32(header.channels)
        info.out_bytes = Int32(header.depth.byteSize)
        let size = header.width * header.height * header.channels * header.depth.byteSize
        let reader = reading?.take()
        // Not zeroed first: libpng writes every row of a decode that succeeds, and one that fails
        // is thrown away.
        var pixels = [UInt8](unsafeUninitializedCapacity: size) { _, n in n = size }
        let (rc, message) = withCErrorBuffer { e, n in
            data.withUnsafeBufferPointer { src in
                pixels.withUnsafeMutableBufferPointer { dst in
                    if let reader {
                        imc_png_finish(reader, src.baseAddress, src.count, dst.baseAddress, dst.count, &info, e, n)
                    } else {
                        imc_png_decode(src.baseAddress, src.count, dst.baseAddress, dst.count, &info, e, n)
                    }
                }
            }
        }
        guard rc == 0 else { throw ImgConvError.library("libpng", message ?? unknownCError) }
        return PixelBuffer(width: header.width, height: header.height, channels: header.channels,
                           depth: header.depth, bytes: pixels)
    }
}

/// libpng's reader of one PNG, stopped after the header (`PNGDecoder.readHeaderKeepingReader`),
/// for the decode of the same file on the same thread; freed when dropped undecoded.
public final class PNGReading {
    private var reader: OpaquePointer?

    init(_ reader: OpaquePointer) { self.reader = reader }

    /// The reader, now the decode's to free.
    func take() -> OpaquePointer? {
        defer { reader = nil }
        return reader
    }

    deinit { imc_png_close(reader) }
}
