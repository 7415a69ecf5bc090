#if canImport(Glibc)
import Glibc
#endif
import ImgConvCore

/// GIF through giflib, composed as Pillow 13's `GifImageFile` gives its frames:
/// - the first frame is Pillow's palette image (mode P) expanded as `convert('RGB')`, or
///   `convert('RGBA')` when a graphic control extension before it names a transparent index
///   (that index becomes alpha 0); with no colour table, or one whose entry i is (i, i, i)
///   throughout, it is Pillow's gray image (mode L): 1 channel, or 2 (gray, alpha) with a
///   transparent index. Indices past the colour table's entries are black, as Pillow converts;
/// - the image is the logical screen, enlarged to hold the frame when the frame reaches past it;
///   outside the frame it holds index 0, or the transparent index when there is one;
/// - interlaced rows are placed as GIF's four passes lay them out;
/// - later frames (`frame` > 0) are the whole canvas after disposal and blending, exactly as
///   Pillow composes them (RGB, or RGBA when the first frame has transparency; its disposal
///   rules, background and transparency quirks included), in the first frame's channels.
public struct GIFDecoder: ImageDecoder {
    /// Which frame to decode.
    public var frame: Int
    public var limits: DecodeLimits

    public init(frame: Int = 0, limits: DecodeLimits = DecodeLimits()) {
        self.frame = frame
        self.limits = limits
    }

    public func readHeader(_ data: [UInt8]) throws -> ImageHeader {
        try header(GIFLayout(MemorySource(data: data)))
    }

    /// The header read through the descriptor: the whole file is walked block by block (no
    /// pixel is decoded), refused once it is longer than its frames can need.
    func readHeader(file: InputFile) throws -> ImageHeader {
        try header(GIFLayout(file))
    }

    private func header(_ layout: GIFLayout) throws -> ImageHeader {
        guard frame < layout.frames else { throw ImgConvError(.corruptInput, "GIF has no frame \(frame)") }
        let size = layout.sizes[frame]
        return ImageHeader(width: size.width, height: size.height, channels: layout.channels, depth: .eight,
                           orientation: 1, pages: layout.frames)
    }

    public func decode(_ data: [UInt8], header: ImageHeader) throws -> PixelBuffer {
        try decode(data, header: header, request: nil)
    }

    /// The same, resuming the request's cursor (of these bytes) and offering it the frames
    /// composed on the way; the request gets the cursor left after `frame`.
    func decode(_ data: [UInt8], header: ImageHeader, request: FrameRequest?) throws -> PixelBuffer {
        // Pillow's composition holds a few images of the canvas at once (RGBA, the frame's, a disposal).
        try limits.check(width: header.width, height: header.height, channels: 16, depth: .eight)
        let resumed = request?.cursor as? GIFAnimation
        request?.cursor = nil
        let cursor = try resumed ?? GIFAnimation(PinnedBytes(data), limits: limits, frameCount: header.pages)
        while cursor.framesDone <= frame {
            try cursor.advance()
            let done = cursor.framesDone - 1
            if done < frame, let request, request.wants(done) {
                request.passing?(done, try cursor.output(channels: header.channels))
            }
        }
        let image = try cursor.output(channels: header.channels)
        request?.cursor = cursor
        guard image.width == header.width, image.height == header.height else {
            throw ImgConvError(.corruptInput, "GIF frame \(frame) is \(image.width)x\(image.height), its header said \(header.width)x\(header.height)")
        }
        return image
    }
}

/// What a walk through a GIF's blocks learns without decoding a pixel: the number of frames
/// (Pillow's `n_frames`), Pillow's mode for the first frame, and Pillow's image size after
/// each frame (the logical screen, enlarged by any frame that reaches past it).
struct GIFLayout {
    var frames = 0
    var channels = 3
    var sizes: [(width: Int, height: Int)] = []

    init(_ source: ByteSource) throws {
        let file = try GIFFile(source)
        var width = file.screenWidth, height = file.screenHeight
        while let image = try file.nextImage() {
            if frames == 0 {
                // Pillow's `self.palette`: the local table if it is one, else the global one. It is
                // what the image converts with, even when the frame's own identity table made it L.
                let local = image.localPalette.flatMap { $0.isNeeded ? $0 : nil }
                let palette = local ?? file.globalPalette.flatMap { $0.isNeeded ? $0 : nil }
                channels = (palette == nil ? 1 : 3) + (image.transparency == nil ? 0 : 1)
            }
            width = max(width, image.right)
            height = max(height, image.bottom)
            sizes.append((width, height))
            frames += 1
            // A file longer than its frames can need is not read on.
            let allowed = ImageFormat.gif.maxFileBytes(ImageHeader(width: sizes[0].width, height: sizes[0].height,
                                                                   channels: 4, depth: .eight, pages: frames))
            if file.offset > allowed {
                throw ImgConvError(.limitExceeded, "more than a \(sizes[0].width)x\(sizes[0].height) GIF of \(frames) frames can need (\(allowed) bytes): not read")
            }
            do {
                try file.skipImageData()
            } catch {
                break   // cut short: Pillow counts the frame, and decoding it fails
            }
        }
        guard frames > 0 else { throw ImgConvError(.corruptInput, "GIF holds no image") }
    }
}

/// Pillow's `GifImageFile` frame by frame (its `_seek`, `load_prepare`, `load_end`), on the
/// images giflib decodes: the modes it goes through (P or L for the first frame, RGB or RGBA
/// after it), its disposal images, pastes and conversions, byte for byte.
final class GIFAnimation: AnimationCursor {
    private let pinned: PinnedBytes
    var data: UnsafeBufferPointer<UInt8> { pinned.buffer }
    private let file: GIFFile
    private let limits: DecodeLimits
    private(set) var framesDone = 0
    let frameCount: Int
    var footprint: Int { pinned.buffer.count + (im?.bytes.count ?? 0) + (dispose?.bytes.count ?? 0) + (64 << 10) }

    /// Pillow's `self.size`, `self.mode`, `self.im`.
    private var width: Int
    private var height: Int
    private var mode = GIFImage.Mode.p
    private var im: GIFImage?
    /// `self.palette`: the first frame's table, what a palette image of the file converts with.
    private var imagePalette: GIFPalette?
    /// The table `Image.load` attaches to the image after the first frame (`self.palette`
    /// realised): with it, an image whose frame made it L converts as P all the same.
    private var corePalette: GIFPalette?
    /// `info["transparency"]`: the first frame's transparent index, until the image turns RGBA.
    private var infoTransparency: Int?
    private var dispose: GIFImage?
    private var disposeBox = (x0: 0, y0: 0, x1: 0, y1: 0)

    init(_ bytes: PinnedBytes, limits: DecodeLimits, frameCount: Int) throws {
        pinned = bytes
        self.limits = limits
        self.frameCount = frameCount
        file = try GIFFile(PinnedSource(pinned: bytes))
        width = file.screenWidth
        height = file.screenHeight
    }

    /// Composes the next frame.
    func advance() throws {
        let k = framesDone
        guard let r = try file.nextImage() else { throw ImgConvError(.corruptInput, "GIF has no frame \(k)") }
        guard r.width > 0, r.height > 0 else {
            throw ImgConvError(.corruptInput, "GIF frame \(k) has no pixels (\(r.width)x\(r.height))")
        }
        // _seek: the image grows to hold the frame.
        if r.right > width || r.bottom > height {
            width = max(width, r.right)
            height = max(height, r.bottom)
            try limits.check(width: width, height: height, channels: 4, depth: .eight)
        }
        let box = (x0: r.left, y0: r.top, x1: r.right, y1: r.bottom)
        if let d = dispose, im != nil { try im!.paste(d, at: disposeBox) }
        // A local table of (i, i, i) entries is no palette (Pillow's `False`), and then the global one is not used either.
        let framePalette: GIFPalette? = r.localPalette != nil ? (r.localPalette!.isNeeded ? r.localPalette : nil)
            : file.globalPalette.flatMap { $0.isNeeded ? $0 : nil }
        if k == 0 {
            mode = framePalette != nil ? .p : .l
            imagePalette = r.localPalette.flatMap { $0.isNeeded ? $0 : nil } ?? file.globalPalette.flatMap { $0.isNeeded ? $0 : nil }
        } else if mode == .p, let current = im {
            // LOADING_STRATEGY RGB_AFTER_FIRST: from the second frame on, the image is RGB(A).
            if let t = infoTransparency {
                im = current.converted(to: .rgba, transparent: t)
                mode = .rgba
                infoTransparency = nil
            } else {
                im = current.converted(to: .rgb, transparent: nil)
                mode = .rgb
            }
        }
        let rgbMode = mode == .rgb || mode == .rgba
        func rgb(_ index: Int) -> [UInt8] {
            guard let p = framePalette else { return [UInt8(truncatingIfNeeded: index), UInt8(truncatingIfNeeded: index), UInt8(truncatingIfNeeded: index)] }
            let c = p.rgb(index)
            return [c.0, c.1, c.2]
        }
        // The disposal of this frame, pasted when the next one is sought.
        dispose = nil
        disposeBox = box
        if r.disposal == 2 {
            if let c = infoTransparency ?? r.transparency {
                dispose = rgbMode ? GIFImage(filling: .rgba, r.width, r.height, rgb(c) + [0])
                    : GIFImage(filling: .p, r.width, r.height, [UInt8(truncatingIfNeeded: c)])
            } else {
                let c = file.background
                dispose = rgbMode ? GIFImage(filling: .rgb, r.width, r.height, rgb(c) + [255])
                    : GIFImage(filling: .p, r.width, r.height, [UInt8(truncatingIfNeeded: c)])
            }
        } else if r.disposal == 3 {
            if let current = im {
                dispose = current.cropped(box)
            } else if let t = r.transparency {
                dispose = rgbMode ? GIFImage(filling: .rgba, r.width, r.height, rgb(t) + [0])
                    : GIFImage(filling: .p, r.width, r.height, [UInt8(truncatingIfNeeded: t)])
            }
        }
        if k == 0, let t = r.transparency { infoTransparency = t }
        let skipIndex: Int? = k > 0 && !rgbMode ? r.transparency : nil

        // load_prepare
        let tempMode: GIFImage.Mode = framePalette != nil ? .p : .l
        var previous: GIFImage?
        if k == 0 {
            if let t = r.transparency {
                im = GIFImage(filling: tempMode, width, height, [UInt8(truncatingIfNeeded: t)])
            }
        } else if rgbMode {
            previous = im
            if framePalette != nil {
                im = GIFImage(filling: .p, width, height, [UInt8(truncatingIfNeeded: r.transparency ?? 0)])
            } else {
                im = nil
            }
        }
        if previous == nil, let current = im, current.width != width || current.height != height {
            var expanded = GIFImage(filling: current.mode, width, height, [0, 0, 0, 0])
            try expanded.paste(current, at: (0, 0, current.width, current.height))
            im = expanded
        }
        mode = tempMode
        var canvas = im ?? GIFImage(filling: mode, width, height, [0, 0, 0, 0])
        if framePalette != nil { canvas.palette = framePalette }
        if k == 0, mode == .p { canvas.palette = imagePalette }
        guard canvas.pixelSize == 1 else { throw ImgConvError(.corruptInput, "GIF frame \(k) cannot be drawn on its image") }
        // The frame's pixels, into its box.
        try canvas.bytes.withUnsafeMutableBufferPointer { out in
            let w = canvas.width
            try file.readImage { y, row in
                let base = (r.top + y) * w + r.left
                if let skip = skipIndex {
                    for x in 0..<row.count where Int(row[x]) != skip { out[base + x] = row[x] }
                } else {
                    for x in 0..<row.count { out[base + x] = row[x] }
                }
            }
        }
        im = canvas
        framesDone += 1
        if k == 0 { corePalette = imagePalette }

        // load_end
        guard k > 0, var prev = previous else { return }
        if prev.width != width || prev.height != height {
            var expanded: GIFImage
            if r.transparency != nil {
                expanded = GIFImage(filling: .rgba, width, height, [0, 0, 0, 0])
            } else {
                guard canvas.mode == .p else { throw ImgConvError(.corruptInput, "GIF frame \(k) cannot be drawn on its image") }
                var p = GIFImage(filling: .p, width, height, [0])
                p.palette = canvas.palette
                expanded = p.converted(to: .rgb, transparent: nil)
            }
            try expanded.paste(prev, at: (0, 0, prev.width, prev.height))
            prev = expanded
        }
        var frameImage: GIFImage
        if let t = r.transparency {
            frameImage = canvas.mode == .l ? canvas.converted(to: .la, transparent: t) : canvas.converted(to: .rgba, transparent: t)
        } else {
            frameImage = canvas.converted(to: .rgb, transparent: nil)
        }
        frameImage = frameImage.cropped(box)
        mode = prev.mode
        if frameImage.mode == .la || frameImage.mode == .rgba {
            try prev.paste(frameImage, at: box, masked: true)
        } else {
            try prev.paste(frameImage, at: box)
        }
        im = prev
    }

    /// The current frame as Pillow gives it, converted to `channels` (1 L, 2 LA, 3 RGB, 4 RGBA)
    /// as `Image.convert` does (the first frame's transparent index, if still recorded, becomes
    /// alpha 0).
    func output(channels: Int) throws -> PixelBuffer {
        guard var image = im else { throw ImgConvError(.internal, "GIF: no frame decoded") }
        if image.mode == .l || image.mode == .p, let palette = corePalette {
            image.mode = .p
            image.palette = palette
        }
        let target: GIFImage.Mode = [1: .l, 2: .la, 3: .rgb, 4: .rgba][channels] ?? .rgb
        let converted = image.mode == target ? image : image.converted(to: target, transparent: infoTransparency)
        return converted.pixels()
    }
}

/// The few Pillow image operations GIF composition uses, on one or four bytes a pixel: L and P
/// (an index, with P's colour table), RGB (R, G, B and a pad byte, as Pillow stores it), RGBA,
/// LA (L, L, L, A). Pastes copy whole pixels, as Pillow's core `paste` does.
struct GIFImage {
    enum Mode { case l, p, rgb, rgba, la }
    var mode: Mode
    var width: Int
    var height: Int
    var bytes: [UInt8]
    var palette: GIFPalette?

    var pixelSize: Int { mode == .l || mode == .p ? 1 : 4 }

    init(mode: Mode, width: Int, height: Int, bytes: [UInt8], palette: GIFPalette?) {
        self.mode = mode
        self.width = width
        self.height = height
        self.bytes = bytes
        self.palette = palette
    }

    /// Pillow's `Image.core.fill(mode, size, color)` (a pixel's bytes; RGB's pad byte is 255).
    init(filling mode: Mode, _ width: Int, _ height: Int, _ pixel: [UInt8]) {
        self.mode = mode
        self.width = width
        self.height = height
        let size = mode == .l || mode == .p ? 1 : 4
        var px = Array(pixel.prefix(size))
        px += [UInt8](repeating: 0, count: size - px.count)
        if mode == .rgb { px[3] = 255 }
        if size == 1 {
            bytes = [UInt8](repeating: px[0], count: width * height)
        } else {
            bytes = [UInt8](repeating: 0, count: width * height * 4)
            bytes.withUnsafeMutableBufferPointer { b in
                for i in 0..<(width * height) {
                    b[i * 4] = px[0]; b[i * 4 + 1] = px[1]; b[i * 4 + 2] = px[2]; b[i * 4 + 3] = px[3]
                }
            }
        }
    }

    /// `im.crop(box)`: outside the image, zeros.
    func cropped(_ box: (x0: Int, y0: Int, x1: Int, y1: Int)) -> GIFImage {
        var out = GIFImage(filling: mode, box.x1 - box.x0, box.y1 - box.y0, [0, 0, 0, 0])
        if mode == .rgb { out.bytes.withUnsafeMutableBufferPointer { b in for i in stride(from: 3, to: b.count, by: 4) { b[i] = 0 } } }
        out.palette = palette
        let ps = pixelSize
        // A box partly or wholly outside the image (a frame past the canvas) keeps zeros there.
        for y in clipped(box.y0, box.y1, to: height) where box.x0 < width && box.x1 > 0 {
            let x0 = max(0, box.x0), x1 = min(width, box.x1)
            guard x1 > x0 else { continue }
            let src = (y * width + x0) * ps, dst = ((y - box.y0) * out.width + (x0 - box.x0)) * ps
            out.bytes.replaceSubrange(dst..<(dst + (x1 - x0) * ps), with: bytes[src..<(src + (x1 - x0) * ps)])
        }
        return out
    }

    /// `im.paste(source, box)`, or with the source as its own mask (its fourth byte, 0 or 255
    /// here, blended as Pillow blends). Pixels of another size cannot be pasted (Pillow: "images
    /// do not match").
    mutating func paste(_ source: GIFImage, at box: (x0: Int, y0: Int, x1: Int, y1: Int), masked: Bool = false) throws {
        guard source.pixelSize == pixelSize, source.width == box.x1 - box.x0, source.height == box.y1 - box.y0 else {
            throw ImgConvError(.corruptInput, "GIF: images do not match")
        }
        let ps = pixelSize
        let sw = source.width
        bytes.withUnsafeMutableBufferPointer { out in
            source.bytes.withUnsafeBufferPointer { src in
                for y in clipped(box.y0, box.y1, to: height) {
                    for x in clipped(box.x0, box.x1, to: width) {
                        let s = ((y - box.y0) * sw + (x - box.x0)) * ps, d = (y * width + x) * ps
                        if masked {
                            let a = UInt32(src[s + 3])
                            for c in 0..<4 {
                                let t = UInt32(src[s + c]) * a + UInt32(out[d + c]) * (255 - a) + 128
                                out[d + c] = UInt8((t + (t >> 8)) >> 8)
                            }
                        } else {
                            for c in 0..<ps { out[d + c] = src[s + c] }
                        }
                    }
                }
            }
        }
    }

    /// `convert(mode)` as Pillow does it for these modes; `transparent` is the index (P) or gray
    /// level (L) that becomes alpha 0 when converting to RGBA or LA (`putpalettealpha` /
    /// `convert_transparent`).
    func converted(to target: Mode, transparent: Int?) -> GIFImage {
        let n = width * height
        let outSize = target == .l || target == .p ? 1 : 4
        let grayIn = mode == .l || mode == .la
        let out: [UInt8]
        if mode == .p || mode == .l {
            // Every index (or gray level) as its output pixel, then one lookup a pixel.
            let table = palette?.table ?? [UInt8](repeating: 0, count: 768)
            var lut = [UInt32](repeating: 0, count: 256)
            for v in 0..<256 {
                var (r, g, b) = mode == .p ? (table[v * 3], table[v * 3 + 1], table[v * 3 + 2]) : (UInt8(v), UInt8(v), UInt8(v))
                let a: UInt8 = target == .rgb || transparent != v ? 255 : 0
                if (target == .la || target == .l) && !grayIn { let l = Self.luma(r, g, b); (r, g, b) = (l, l, l) }
                lut[v] = UInt32(r) | UInt32(g) << 8 | UInt32(b) << 16 | UInt32(a) << 24
            }
            out = [UInt8](unsafeUninitializedCapacity: n * outSize) { dst, count in
                bytes.withUnsafeBufferPointer { src in
                    lut.withUnsafeBufferPointer { t in
                        if outSize == 4 {
                            let d = UnsafeMutableRawPointer(dst.baseAddress!)
                            for i in 0..<n { d.storeBytes(of: t[Int(src[i])].littleEndian, toByteOffset: i * 4, as: UInt32.self) }
                        } else {
                            for i in 0..<n { dst[i] = UInt8(truncatingIfNeeded: t[Int(src[i])]) }
                        }
                    }
                }
                count = n * outSize
            }
        } else {
            // RGB(X), RGBA, LA: four bytes in.
            let forceAlpha: UInt32 = target == .rgb || mode == .rgb ? 0xFF00_0000 : 0
            let toGray = (target == .la || target == .l) && !grayIn
            out = [UInt8](unsafeUninitializedCapacity: n * outSize) { dst, count in
                bytes.withUnsafeBytes { raw in
                    if outSize == 4 && !toGray {
                        let d = UnsafeMutableRawPointer(dst.baseAddress!)
                        for i in 0..<n {
                            let px = raw.load(fromByteOffset: i * 4, as: UInt32.self)
                            d.storeBytes(of: px | forceAlpha.littleEndian, toByteOffset: i * 4, as: UInt32.self)
                        }
                    } else {
                        for i in 0..<n {
                            let r = raw[i * 4], g = raw[i * 4 + 1], b = raw[i * 4 + 2]
                            let l = grayIn ? r : Self.luma(r, g, b)
                            if outSize == 1 { dst[i] = l; continue }
                            dst[i * 4] = l; dst[i * 4 + 1] = l; dst[i * 4 + 2] = l
                            dst[i * 4 + 3] = forceAlpha != 0 ? 255 : raw[i * 4 + 3]
                        }
                    }
                }
                count = n * outSize
            }
        }
        return GIFImage(mode: target, width: width, height: height, bytes: out, palette: target == .p ? palette : nil)
    }

    /// Pillow's L from RGB (ITU-R 601-2 luma, rounded).
    @inline(__always)
    static func luma(_ r: UInt8, _ g: UInt8, _ b: UInt8) -> UInt8 {
        let sum: UInt32 = UInt32(r) * 19595 + UInt32(g) * 38470 + UInt32(b) * 7471 + 0x8000
        return UInt8(truncatingIfNeeded: sum >> 16)
    }

    /// The pixels as imgconv hands them on: L 1, LA 2, RGB 3, RGBA 4 channels.
    func pixels() -> PixelBuffer {
        let n = width * height
        switch mode {
        case .l, .p:
            return PixelBuffer(width: width, height: height, channels: 1, depth: .eight, bytes: bytes)
        case .la:
            var out = [UInt8](repeating: 0, count: n * 2)
            for i in 0..<n { out[i * 2] = bytes[i * 4]; out[i * 2 + 1] = bytes[i * 4 + 3] }
            return PixelBuffer(width: width, height: height, channels: 2, depth: .eight, bytes: out)
        case .rgb:
            var out = [UInt8](repeating: 0, count: n * 3)
            out.withUnsafeMutableBufferPointer { o in
                bytes.withUnsafeBufferPointer { s in
                    for i in 0..<n { o[i * 3] = s[i * 4]; o[i * 3 + 1] = s[i * 4 + 1]; o[i * 3 + 2] = s[i * 4 + 2] }
                }
            }
            return PixelBuffer(width: width, height: height, channels: 3, depth: .eight, bytes: out)
        case .rgba:
            return PixelBuffer(width: width, height: height, channels: 4, depth: .eight, bytes: bytes)
        }
    }
}

/// The part of lo..<hi within 0..<limit (empty when they do not meet).
private func clipped(_ lo: Int, _ hi: Int, to limit: Int) -> Range<Int> {
    let a = max(0, lo), b = min(limit, hi)
    return a..<max(a, b)
}

/// Bytes pinned in memory as a `ByteSource`.
struct PinnedSource: ByteSource {
    let pinned: PinnedBytes
    var size: Int { pinned.buffer.count }
    func bytes(_ count: Int, at offset: Int) throws -> [UInt8] {
        guard offset >= 0, offset < size, count > 0 else { return [] }
        return Array(pinned.buffer[offset..<min(size, offset + count)])
    }
}
