import CShims
import ImgConvCore

/// TIFF through libtiff's strip and tile reads (raw samples, not the 8-bit RGBA convenience path).
/// Supported here: 8- and 16-bit unsigned gray (min-is-black or min-is-white, inverted), RGB and
/// RGBA, with or without extra samples, contiguous or planar-separate, strips or tiles, any
/// compression libtiff decodes; 8-bit palette images expand to RGB. The first page is read.
public struct TIFFDecoder: ImageDecoder {
    public init() {}

    private func info(_ data: [UInt8]) throws -> imc_tiff_info {
        var info = imc_tiff_info()
        var err = CErrorBuffer()
        let rc = data.withUnsafeBufferPointer { buf in
            imc_tiff_read_info(buf.baseAddress, buf.count, &info, &err.bytes, err.bytes.count)
        }
        guard rc == 0 else { throw ImgConvError(.corruptInput, "libtiff: \(err.text)") }
        return info
    }

    /// The layout the raw samples have, and what the decoder turns them into.
    private struct Layout {
        var storedSamples: Int
        var outChannels: Int
        var depth: SampleDepth
        var invert: Bool
        var palette: Bool
    }

    private func layout(_ i: imc_tiff_info) throws -> Layout {
        let spp = Int(i.samples_per_pixel)
        let bps = Int(i.bits_per_sample)
        guard i.sample_format == 1 else {
            throw ImgConvError(.unsupported, "TIFF sample format \(i.sample_format == 3 ? "floating point" : i.sample_format == 2 ? "signed integer" : "\(i.sample_format)") is not supported yet")
        }
        guard bps == 8 || bps == 16 else {
            throw ImgConvError(.unsupported, "TIFF with \(bps)-bit samples is not supported yet")
        }
        let depth: SampleDepth = bps == 16 ? .sixteen : .eight
        switch (i.photometric, spp) {
        case (0, 1), (1, 1):
            return Layout(storedSamples: 1, outChannels: 1, depth: depth, invert: i.photometric == 0, palette: false)
        case (0, _), (1, _):
            // Gray plus extra samples: the first extra one is alpha when marked as such.
            let alpha = i.extra_samples > 0 && (i.extra_kind == 1 || i.extra_kind == 2)
            return Layout(storedSamples: spp, outChannels: alpha ? 2 : 1, depth: depth, invert: i.photometric == 0, palette: false)
        case (2, 3):
            return Layout(storedSamples: 3, outChannels: 3, depth: depth, invert: false, palette: false)
        case (2, let n) where n > 3:
            let alpha = i.extra_samples > 0 && (i.extra_kind == 1 || i.extra_kind == 2)
            return Layout(storedSamples: n, outChannels: alpha ? 4 : 3, depth: depth, invert: false, palette: false)
        case (3, 1) where bps == 8:
            return Layout(storedSamples: 1, outChannels: 3, depth: .eight, invert: false, palette: true)
        default:
            throw ImgConvError(.unsupported, "TIFF photometric interpretation \(i.photometric) with \(spp) samples per pixel is not supported yet")
        }
    }

    public func readHeader(_ data: [UInt8]) throws -> ImageHeader {
        let i = try info(data)
        let l = try layout(i)
        return ImageHeader(width: Int(i.width), height: Int(i.height), channels: l.outChannels, depth: l.depth)
    }

    public func decode(_ data: [UInt8], header: ImageHeader) throws -> PixelBuffer {
        let i = try info(data)
        let l = try layout(i)
        guard Int(i.width) == header.width, Int(i.height) == header.height else {
            throw ImgConvError(.corruptInput, "header changed between reads")
        }
        let count = header.width * header.height
        var raw = [UInt8](repeating: 0, count: count * l.storedSamples * l.depth.byteSize)
        var err = CErrorBuffer()
        let rc = data.withUnsafeBufferPointer { src in
            raw.withUnsafeMutableBufferPointer { dst in
                imc_tiff_decode(src.baseAddress, src.count, dst.baseAddress, dst.count, &err.bytes, err.bytes.count)
            }
        }
        guard rc == 0 else { throw ImgConvError(.corruptInput, "libtiff: \(err.text)") }

        if l.palette {
            var r = [UInt16](repeating: 0, count: 256), g = r, b = r
            let ok = data.withUnsafeBufferPointer { src in
                imc_tiff_colormap(src.baseAddress, src.count, &r, &g, &b, 256, &err.bytes, err.bytes.count)
            }
            guard ok == 0 else { throw ImgConvError(.corruptInput, "libtiff: \(err.text)") }
            // Colormaps hold 16-bit values; a few writers store 0-255, which the top byte would zero.
            let eightBit = (r + g + b).allSatisfy { $0 <= 255 }
            let shift: UInt16 = eightBit ? 0 : 8
            var out = [UInt8](repeating: 0, count: count * 3)
            for p in 0..<count {
                let idx = Int(raw[p])
                out[p * 3] = UInt8(truncatingIfNeeded: r[idx] >> shift)
                out[p * 3 + 1] = UInt8(truncatingIfNeeded: g[idx] >> shift)
                out[p * 3 + 2] = UInt8(truncatingIfNeeded: b[idx] >> shift)
            }
            return PixelBuffer(width: header.width, height: header.height, channels: 3, depth: .eight, bytes: out)
        }
        if l.storedSamples != l.outChannels {
            raw = keepLeadingSamples(raw, count: count, stored: l.storedSamples, keep: l.outChannels, bytes: l.depth.byteSize)
        }
        if l.invert {
            // Min-is-white: only the gray sample is inverted, not alpha.
            raw.withUnsafeMutableBytes { buf in
                switch l.depth {
                case .eight:
                    let s = buf.bindMemory(to: UInt8.self)
                    for p in 0..<count { s[p * l.outChannels] = 255 - s[p * l.outChannels] }
                case .sixteen:
                    let s = buf.bindMemory(to: UInt16.self)
                    for p in 0..<count { s[p * l.outChannels] = 65535 - s[p * l.outChannels] }
                }
            }
        }
        return PixelBuffer(width: header.width, height: header.height, channels: l.outChannels, depth: l.depth, bytes: raw)
    }

    private func keepLeadingSamples(_ raw: [UInt8], count: Int, stored: Int, keep: Int, bytes: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count * keep * bytes)
        let inPixel = stored * bytes, outPixel = keep * bytes
        for p in 0..<count {
            for k in 0..<outPixel { out[p * outPixel + k] = raw[p * inPixel + k] }
        }
        return out
    }
}
