import ImgConvCore

/// Settings every decoder follows.
public struct DecodeOptions: Sendable {
    public var limits = DecodeLimits()
    /// Rotate and mirror images as their EXIF (or TIFF) orientation says, as Pillow's
    /// `ImageOps.exif_transpose`.
    public var exifOrientation = true
    /// Accept JPEGs that decode with a warning (truncated downloads).
    public var allowTruncatedJPEG = false
    /// Decode JPEGs with DCT scaling (1/2, 1/4, 1/8) when the target size allows.
    public var jpegDraft = false
    /// Narrow 10/12-bit AVIF and HEIF colour images to 8 bits in the decoder, as Pillow and
    /// pillow-heif do (`--dtype uint8`), instead of reading them as uint16.
    public var narrowHighDepth = false
    /// Every frame of an animation is asked for (`--frames all`): the decoders share an
    /// `AnimationPool` so that frames do not each compose the animation from its start.
    public var allFrames = false

    public init() {}
}

/// The decoder registry: sniffs, reads headers against the limits, decodes, orients.
public struct Decoders: Sendable {
    public var options: DecodeOptions
    /// The animations of this run, with `allFrames` (one pool for every copy of these decoders).
    public let animations: AnimationPool?

    public init(options: DecodeOptions = DecodeOptions()) {
        self.options = options
        animations = options.allFrames ? AnimationPool() : nil
    }

    public func decoder(for format: ImageFormat, page: Int = 0) -> ImageDecoder? {
        switch format {
        case .png: return PNGDecoder()
        case .jpeg: return JPEGDecoder(allowTruncated: options.allowTruncatedJPEG)
        case .tiff: return TIFFDecoder(page: page, limits: options.limits)
        case .avif, .heif: return HEIFDecoder(avif: format == .avif, limits: options.limits, narrowHighDepth: options.narrowHighDepth)
        case .bmp: return BMPDecoder(limits: options.limits)
        case .gif: return GIFDecoder(frame: page, limits: options.limits)
        case .webp: return WebPDecoder(frame: page, limits: options.limits)
        default: return nil
        }
    }

    /// Header of an image held in memory, checked against the limits; `orientation` is 1 when
    /// orientation is not applied.
    /// - Throws: `ImgConvError` (`.unsupported` for formats without a decoder).
    public func header(_ data: [UInt8], format: ImageFormat, page: Int = 0) throws -> ImageHeader {
        guard let decoder = decoder(for: format, page: page) else {
            throw ImgConvError(.unsupported, "\(format.rawValue.uppercased()) files are not supported")
        }
        return try checked(decoder.readHeader(data))
    }

    /// The header of page `page` of an image file whose first bytes are `prefix`, reading no
    /// more than the header needs: a TIFF's directories and a WebP's chunk headers through the
    /// descriptor wherever they lie, a GIF's blocks one after another (its frames are counted,
    /// no pixel decoded); another format's header from up to `ImageFormat.metadataAllowance` bytes.
    /// - Throws: as `header(_:format:page:)`; `.io` when reading fails.
    public func header(_ prefix: [UInt8], of input: InputFile, format: ImageFormat, page: Int = 0) throws -> ImageHeader {
        try header(prefix, of: input, format: format, page: page, keepReader: false).header
    }

    /// The same; with `keepReader`, a PNG's libpng reader after its header when the header
    /// came from `prefix`, for `decode(_:format:header:page:target:request:reading:)`.
    public func header(_ prefix: [UInt8], of input: InputFile, format: ImageFormat, page: Int = 0,
                       keepReader: Bool) throws -> (header: ImageHeader, reading: PNGReading?) {
        // A TIFF's directory may point past the prefix (a colormap, per-sample arrays), and
        // libtiff substitutes defaults for some tags it cannot read (a palette file without its
        // colormap becomes gray, with a warning): its header is always read from the file.
        if format == .tiff && input.size > prefix.count {
            return (try checked(TIFFDecoder(page: page, limits: options.limits).readHeader(file: input)), nil)
        }
        if input.size > prefix.count && (format == .gif || format == .webp) {
            return (try checked(fileHeader(prefix, of: input, format: format, page: page)), nil)
        }
        do {
            var h: ImageHeader, reading: PNGReading?
            if keepReader && format == .png {
                let (found, kept) = try PNGDecoder().readHeaderKeepingReader(prefix)
                (h, reading) = (try checked(found), kept)
            } else {
                h = try header(prefix, format: format, page: page)
            }
            // A PNG's orientation may come in a chunk after the image data.
            if format == .png, options.exifOrientation, input.size > prefix.count {
                h.orientation = ExifOrientation.fromPNG { offset, count in
                    var bytes: [UInt8] = []
                    try? input.read(count, at: offset, appendingTo: &bytes)
                    return bytes
                }
            }
            return (h, reading)
        } catch let e as ImgConvError where e.code == .corruptInput && input.size > prefix.count {
            if format == .tiff {
                return (try checked(TIFFDecoder(page: page, limits: options.limits).readHeader(file: input)), nil)
            }
            return (try header(input.prefix(ImageFormat.metadataAllowance), format: format, page: page), nil)
        }
    }

    /// The header of every frame of an animation (GIF, WebP; one for a still image), or of
    /// every page of a TIFF, each checked against the limits.
    /// - Throws: as `header(_:of:format:page:)`.
    public func frameHeaders(_ prefix: [UInt8], of input: InputFile, format: ImageFormat) throws -> [ImageHeader] {
        switch format {
        case .gif:
            let layout = input.size > prefix.count ? try GIFLayout(input) : try GIFLayout(MemorySource(data: prefix))
            return try layout.sizes.map { size in
                try checked(ImageHeader(width: size.width, height: size.height, channels: layout.channels, depth: .eight,
                                        orientation: 1, pages: layout.frames))
            }
        case .webp:
            let first = try header(prefix, of: input, format: format)
            return Array(repeating: first, count: first.pages)
        default:
            let first = try header(prefix, of: input, format: format)
            return try [first] + (1..<max(1, first.pages)).map { try header(prefix, of: input, format: format, page: $0) }
        }
    }

    /// A GIF's or a WebP's header read through the descriptor (see `header(_:of:format:page:)`).
    private func fileHeader(_ prefix: [UInt8], of input: InputFile, format: ImageFormat, page: Int) throws -> ImageHeader {
        if format == .gif { return try GIFDecoder(frame: page, limits: options.limits).readHeader(file: input) }
        let webp = WebPDecoder(frame: page, limits: options.limits)
        do {
            return try webp.readHeader(file: input, prefix: prefix)
        } catch let e as ImgConvError where e.code == .corruptInput {
            // The image's own header lies beyond the first bytes (large chunks before it).
            return try webp.readHeader(file: input, prefix: input.prefix(ImageFormat.metadataAllowance))
        }
    }

    /// The whole file of an image of `header` (its first bytes `prefix` already read), refused
    /// unread when it is larger than the format can need for that image.
    /// - Throws: `.limitExceeded` for a file too large, `.io` when reading fails.
    public func read(_ input: InputFile, after prefix: [UInt8] = [], format: ImageFormat, header: ImageHeader) throws -> [UInt8] {
        try input.readAll(after: prefix, maxBytes: format.maxFileBytes(header), why: format.tooLargeReason(header))
    }

    /// A header checked against the limits, its orientation dropped unless it is applied.
    private func checked(_ header: ImageHeader) throws -> ImageHeader {
        var h = header
        try options.limits.check(width: h.width, height: h.height, channels: h.channels, depth: h.depth)
        if !options.exifOrientation { h.orientation = 1 }
        return h
    }

    /// Decodes pixels for a header from `header(_:format:)`, orientation applied. With
    /// `jpegDraft`, a JPEG may come out smaller, but never below `target` (upright size).
    /// An animation's frame with a `request` (from `animations`) resumes its cursor and offers it
    /// the frames composed on the way (orientation applied).
    /// With `reading` (kept by `header(_:of:format:page:keepReader:)` from `data`'s first bytes), a
    /// PNG is decoded from where its header ended.
    public func decode(_ data: [UInt8], format: ImageFormat, header: ImageHeader, page: Int = 0,
                       target: (width: Int, height: Int)? = nil, request: FrameRequest? = nil,
                       reading: PNGReading? = nil) throws -> PixelBuffer {
        if let reading, format == .png {
            return try PNGDecoder().decode(data, header: header, reading: reading).oriented(header.orientation)
        }
        if let request, format == .gif || format == .webp {
            let passing = request.passing
            request.passing = passing.map { take in { take($0, $1.oriented(header.orientation)) } }
            defer { request.passing = passing }
            let image = format == .gif
                ? try GIFDecoder(frame: page, limits: options.limits).decode(data, header: header, request: request)
                : try WebPDecoder(frame: page, limits: options.limits).decode(data, header: header, request: request)
            return image.oriented(header.orientation)
        }
        if format == .jpeg, options.jpegDraft, let target {
            let stored = header.orientation >= 5 ? (width: target.height, height: target.width) : target
            return try JPEGDecoder(allowTruncated: options.allowTruncatedJPEG)
                .decode(data, header: header, atLeast: stored).oriented(header.orientation)
        }
        guard let decoder = decoder(for: format, page: page) else {
            throw ImgConvError(.unsupported, "\(format.rawValue.uppercased()) files are not supported")
        }
        return try decoder.decode(data, header: header).oriented(header.orientation)
    }

    /// Sniffs and decodes an image held in memory.
    /// - Throws: `ImgConvError` without a path; the caller names the file.
    public func decode(_ data: [UInt8]) throws -> (PixelBuffer, ImageFormat) {
        guard let format = ImageFormat.sniff(data[...]) else {
            throw ImgConvError(.unsupported, "not a recognised image format")
        }
        let h = try header(data, format: format)
        return (try decode(data, format: format, header: h), format)
    }
}

/// Runs `body` with an empty C error buffer (512 bytes on the stack: no allocation per call, as
/// a decoder calls its shim once or twice per file) for a shim to fill; gives body's result and
/// the buffer's text, nil when the shim wrote none.
func withCErrorBuffer<R>(_ body: (UnsafeMutablePointer<CChar>, Int) throws -> R) rethrows -> (result: R, message: String?) {
    try withUnsafeTemporaryAllocation(of: CChar.self, capacity: 512) { buffer in
        buffer[0] = 0
        let result = try body(buffer.baseAddress!, buffer.count)
        return (result, buffer[0] == 0 ? nil : String(cString: buffer.baseAddress!))
    }
}

/// What a shim that failed without saying why is reported as.
let unknownCError = "unknown error"
