#if canImport(Glibc)
import Glibc
#endif
import CWebP
import ImgConvCore

/// WebP through libwebp, as Pillow reads it: lossy (VP8) without alpha gives RGB, a file with
/// alpha (an ALPH chunk, VP8L alpha, the VP8X alpha flag) gives RGBA, non-premultiplied, samples
/// as libwebp decodes them (fancy upsampling, no dithering). Still images go through
/// `WebPDecode` into the output buffer; animations through libwebpdemux's `WebPAnimDecoder`,
/// whose frames are the whole canvas after disposal and blending (what Pillow's `ImageSequence`
/// gives), RGB when the file has no alpha flag (the canvas's alpha dropped, as Pillow's RGBX).
/// Orientation: the EXIF chunk's (an `Exif\0\0` prefix is skipped, as Pillow does), else an XMP
/// chunk's `tiff:Orientation`, which Pillow's `getexif` also reads.
public struct WebPDecoder: ImageDecoder {
    /// Which frame of an animation to decode.
    public var frame: Int
    public var limits: DecodeLimits

    public init(frame: Int = 0, limits: DecodeLimits = DecodeLimits()) {
        self.frame = frame
        self.limits = limits
    }

    public func readHeader(_ data: [UInt8]) throws -> ImageHeader {
        try header(MemorySource(data: data), prefix: data)
    }

    /// The header of a WebP read through the descriptor: the features from the first bytes
    /// (`prefix`), then the chunks' headers wherever they lie (frames, EXIF, XMP).
    func readHeader(file: InputFile, prefix: [UInt8]) throws -> ImageHeader {
        try header(file, prefix: prefix)
    }

    private func header(_ source: ByteSource, prefix: [UInt8]) throws -> ImageHeader {
        let features = try Self.features(prefix)
        let layout = try WebPLayout(source)
        let width = Int(features.width), height = Int(features.height)
        let channels = features.has_alpha != 0 ? 4 : 3
        let animated = features.has_animation != 0
        if animated {
            guard layout.frames > 0 else { throw ImgConvError(.corruptInput, "WebP animation without frames") }
            // WebPAnimDecoder holds two RGBA canvases.
            try limits.check(width: width, height: height, channels: 8, depth: .eight)
        }
        guard frame < (animated ? layout.frames : 1) else {
            throw ImgConvError(.corruptInput, "WebP has no frame \(frame)")
        }
        return ImageHeader(width: width, height: height, channels: channels, depth: .eight,
                           orientation: layout.orientation, pages: animated ? layout.frames : 1)
    }

    /// WebPGetFeatures; `.corruptInput` when the bytes do not reach the image's header (the
    /// caller then reads further).
    static func features(_ data: [UInt8]) throws -> WebPBitstreamFeatures {
        var f = WebPBitstreamFeatures()
        let status = data.withUnsafeBufferPointer { WebPGetFeatures($0.baseAddress, $0.count, &f) }
        guard status == VP8_STATUS_OK else { throw statusError(status) }
        guard f.width > 0, f.height > 0 else { throw ImgConvError(.corruptInput, "libwebp: image has no pixels") }
        return f
    }

    static func statusError(_ status: VP8StatusCode) -> ImgConvError {
        switch status {
        case VP8_STATUS_OUT_OF_MEMORY: return ImgConvError(.resources, "libwebp: out of memory")
        case VP8_STATUS_NOT_ENOUGH_DATA: return ImgConvError(.corruptInput, "libwebp: not enough data (truncated file)")
        case VP8_STATUS_UNSUPPORTED_FEATURE: return ImgConvError(.corruptInput, "libwebp: unsupported feature")
        case VP8_STATUS_INVALID_PARAM: return ImgConvError(.corruptInput, "libwebp: invalid parameter")
        default: return ImgConvError(.corruptInput, "libwebp: bitstream error")
        }
    }

    public func decode(_ data: [UInt8], header: ImageHeader) throws -> PixelBuffer {
        try decode(data, header: header, request: nil)
    }

    /// The same; an animation resumes the request's cursor (of these bytes) and offers it the
    /// frames composed on the way; the request gets the cursor left after `frame`.
    func decode(_ data: [UInt8], header: ImageHeader, request: FrameRequest?) throws -> PixelBuffer {
        let f = try Self.features(data)
        guard Int(f.width) == header.width, Int(f.height) == header.height else {
            throw ImgConvError(.corruptInput, "header changed between reads")
        }
        if f.has_animation != 0 { return try decodeFrame(data, header: header, request: request) }
        try limits.check(width: header.width, height: header.height, channels: header.channels, depth: .eight)
        var pixels = [UInt8](repeating: 0, count: header.width * header.height * header.channels)
        var config = WebPDecoderConfig()
        guard WebPInitDecoderConfig(&config) != 0 else { throw ImgConvError(.internal, "libwebp: version mismatch") }
        let status = pixels.withUnsafeMutableBufferPointer { out -> VP8StatusCode in
            config.output.colorspace = header.channels == 4 ? MODE_RGBA : MODE_RGB
            config.output.is_external_memory = 1
            config.output.width = Int32(header.width)
            config.output.height = Int32(header.height)
            config.output.u.RGBA.rgba = out.baseAddress
            config.output.u.RGBA.stride = Int32(header.width * header.channels)
            config.output.u.RGBA.size = out.count
            return data.withUnsafeBufferPointer { WebPDecode($0.baseAddress, $0.count, &config) }
        }
        WebPFreeDecBuffer(&config.output)
        guard status == VP8_STATUS_OK else { throw Self.statusError(status) }
        return PixelBuffer(width: header.width, height: header.height, channels: header.channels, depth: .eight, bytes: pixels)
    }

    /// Frame `frame` of an animation: the canvas WebPAnimDecoder gives after it.
    private func decodeFrame(_ data: [UInt8], header: ImageHeader, request: FrameRequest?) throws -> PixelBuffer {
        try limits.check(width: header.width, height: header.height, channels: 8, depth: .eight)
        let resumed = request?.cursor as? WebPAnimationCursor
        request?.cursor = nil
        let cursor = try resumed ?? WebPAnimationCursor(data)
        guard cursor.width == header.width, cursor.height == header.height else {
            throw ImgConvError(.corruptInput, "libwebp: animation canvas differs from its header")
        }
        var canvas: UnsafeMutablePointer<UInt8>?
        while cursor.framesDone <= frame {
            canvas = try cursor.next()
            let done = cursor.framesDone - 1
            if done < frame, let request, request.wants(done), let canvas {
                request.passing?(done, Self.pixels(canvas, header: header))
            }
        }
        guard let canvas else { throw ImgConvError(.corruptInput, "libwebp: no frame \(frame)") }
        let image = Self.pixels(canvas, header: header)
        request?.cursor = cursor
        return image
    }

    /// An RGBA canvas as the header's channels (RGB drops alpha, as Pillow's RGBX).
    private static func pixels(_ canvas: UnsafeMutablePointer<UInt8>, header: ImageHeader) -> PixelBuffer {
        let count = header.width * header.height
        var pixels = [UInt8](repeating: 0, count: count * header.channels)
        if header.channels == 4 {
            pixels.withUnsafeMutableBytes { $0.baseAddress!.copyMemory(from: canvas, byteCount: count * 4) }
        } else {
            pixels.withUnsafeMutableBufferPointer { out in
                for p in 0..<count {
                    out[p * 3] = canvas[p * 4]
                    out[p * 3 + 1] = canvas[p * 4 + 1]
                    out[p * 3 + 2] = canvas[p * 4 + 2]
                }
            }
        }
        return PixelBuffer(width: header.width, height: header.height, channels: header.channels, depth: .eight, bytes: pixels)
    }
}

/// A WebPAnimDecoder over its own copy of the file (the decoder keeps pointers into it).
final class WebPAnimationCursor: AnimationCursor {
    private let pinned: PinnedBytes
    var data: UnsafeBufferPointer<UInt8> { pinned.buffer }
    private var decoder: OpaquePointer
    private(set) var framesDone = 0
    let frameCount: Int
    let width: Int
    let height: Int
    /// Its copy of the file, and WebPAnimDecoder's two RGBA canvases.
    var footprint: Int { data.count + width * height * 8 + (64 << 10) }

    init(_ bytes: [UInt8]) throws {
        pinned = PinnedBytes(bytes)
        var options = WebPAnimDecoderOptions()
        var webp = WebPData(bytes: pinned.buffer.baseAddress, size: pinned.buffer.count)
        guard WebPAnimDecoderOptionsInit(&options) != 0 else {
            throw ImgConvError(.internal, "libwebpdemux: version mismatch")
        }
        options.color_mode = MODE_RGBA
        options.use_threads = 0
        guard let decoder = WebPAnimDecoderNew(&webp, &options) else {
            throw ImgConvError(.corruptInput, "libwebpdemux: cannot read the animation (invalid or truncated)")
        }
        var info = WebPAnimInfo()
        guard WebPAnimDecoderGetInfo(decoder, &info) != 0 else {
            WebPAnimDecoderDelete(decoder)
            throw ImgConvError(.corruptInput, "libwebpdemux: cannot read the animation's header")
        }
        self.decoder = decoder
        frameCount = Int(info.frame_count)
        width = Int(info.canvas_width)
        height = Int(info.canvas_height)
    }

    deinit { WebPAnimDecoderDelete(decoder) }

    /// The canvas after the next frame (valid until the next call).
    func next() throws -> UnsafeMutablePointer<UInt8> {
        var buffer: UnsafeMutablePointer<UInt8>?
        var timestamp: Int32 = 0
        guard framesDone < frameCount, WebPAnimDecoderGetNext(decoder, &buffer, &timestamp) != 0, let buffer else {
            throw ImgConvError(.corruptInput, "libwebpdemux: cannot decode frame \(framesDone) (invalid or truncated)")
        }
        framesDone += 1
        return buffer
    }
}

/// What a walk through a WebP's RIFF chunks finds (only an extended file, `VP8X` first, has
/// chunks besides its image): the number of animation frames (`ANMF` chunks) and the orientation
/// of its EXIF (else XMP) chunk.
struct WebPLayout {
    var frames = 1
    var orientation = 1

    /// The EXIF and XMP chunks are read when they are at most this long.
    static let maxMetadataChunk = ImageFormat.metadataAllowance

    init(_ source: ByteSource) throws {
        let head = try source.bytes(16, at: 0)
        guard head.count >= 16, head[0..<4].elementsEqual("RIFF".utf8), head[8..<12].elementsEqual("WEBP".utf8) else {
            throw ImgConvError(.corruptInput, "not a WebP RIFF header")
        }
        guard head[12..<16].elementsEqual("VP8X".utf8) else { return }
        let riffEnd = min(source.size, 8 + Int(Self.u32(head, 4)))
        var offset = 12
        var anmf = 0
        var exif: [UInt8]?
        var xmp: [UInt8]?
        while offset + 8 <= riffEnd {
            let chunk = try source.bytes(8, at: offset)
            guard chunk.count == 8 else { break }
            let size = Int(Self.u32(chunk, 4))
            let tag = String(decoding: chunk[0..<4], as: UTF8.self)
            let payload = offset + 8
            if tag == "ANMF" {
                anmf += 1
            } else if (tag == "EXIF" && exif == nil) || (tag == "XMP " && xmp == nil), size <= Self.maxMetadataChunk,
                      payload + size <= riffEnd {
                let bytes = try source.bytes(size, at: payload)
                if tag == "EXIF" { exif = bytes } else { xmp = bytes }
            }
            offset = payload + size + (size & 1)
        }
        frames = max(1, anmf)
        orientation = ExifOrientation.fromWebP(exif: exif, xmp: xmp)
    }

    static func u32(_ b: [UInt8], _ o: Int) -> UInt32 {
        UInt32(b[o]) | UInt32(b[o + 1]) << 8 | UInt32(b[o + 2]) << 16 | UInt32(b[o + 3]) << 24
    }
}
