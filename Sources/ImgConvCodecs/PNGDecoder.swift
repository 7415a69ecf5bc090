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
        let i = try info(data)
        return ImageHeader(width: Int(i.width), height: Int(i.height), channels: Int(i.out_channels),
                           depth: i.out_bytes == 2 ? .sixteen : .eight, orientation: ExifOrientation.fromPNG(data))
    }

    public func decode(_ data: [UInt8], header: ImageHeader) throws -> PixelBuffer {
        var info = imc_png_info()
        info.width = UInt32(header.width)
        info.height = UInt32(header.height)
        info.out_channels = Int32(header.channels)
        info.out_bytes = Int32(header.depth.byteSize)
        let size = header.width * header.height * header.channels * header.depth.byteSize
        // Not zeroed first: libpng writes every row of a decode that succeeds, and one that fails
        // is thrown away.
        var pixels = [UInt8](unsafeUninitializedCapacity: size) { _, n in n = size }
        let (rc, message) = withCErrorBuffer { e, n in
            data.withUnsafeBufferPointer { src in
                pixels.withUnsafeMutableBufferPointer { dst in
                    imc_png_decode(src.baseAddress, src.count, dst.baseAddress, dst.count, &info, e, n)
                }
            }
        }
        guard rc == 0 else { throw ImgConvError.library("libpng", message ?? unknownCError) }
        return PixelBuffer(width: header.width, height: header.height, channels: header.channels,
                           depth: header.depth, bytes: pixels)
    }
}
