import ImgConvCore

/// What to do with TIFF files of several pages.
public enum TIFFPages: String, Sendable, CaseIterable {
    /// Convert the first page, count the others in the summary.
    case first
    /// Every page becomes an image of the file's class.
    case all
    /// Refuse such files.
    case error
}

/// What to do with the frames of an animated GIF or WebP (as `TIFFPages` for TIFF pages).
public enum AnimationFrames: String, Sendable, CaseIterable {
    /// Convert the first frame, count the others in the summary.
    case first
    /// Every frame (the whole canvas after disposal and blending) becomes an image of the file's class.
    case all
    /// Refuse such files.
    case error
}

/// One image to convert: a file (and, for multipage TIFF, a page; for an animation, a frame)
/// with its header.
public struct Candidate: Sendable {
    public var file: SourceFile
    public var header: ImageHeader
    public var format: ImageFormat
    public var page: Int

    public init(file: SourceFile, header: ImageHeader, format: ImageFormat, page: Int) {
        self.file = file
        self.header = header
        self.format = format
        self.page = page
    }
}

/// The header pass of a conversion: what each file is, from its first bytes, before any pixel is
/// decoded. Runs on any thread.
public struct HeaderPass: Sendable {
    public let decoders: Decoders
    public let tiffPages: TIFFPages
    public let frames: AnimationFrames

    public init(decoders: Decoders, tiffPages: TIFFPages, frames: AnimationFrames = .first) {
        self.decoders = decoders
        self.tiffPages = tiffPages
        self.frames = frames
    }

    /// What the header pass learns of one file.
    public enum Probe {
        /// Its images (one, or one per TIFF page or animation frame), and the pages or frames
        /// left out (`Candidate.format` says which).
        case images([Candidate], ignoredPages: Int)
        /// Not an image we decode: skipped, not an error.
        case skip(String)
        /// An image we should decode but cannot.
        case bad(ImgConvError)
    }

    /// Enough for the header of almost every file; the others are read further (see
    /// `Decoders.header(_:of:format:page:)`), never whole.
    public static let prefixBytes = 16 * 1024
    /// A file to be read whole anyway is read in one piece up to this size, before its header is
    /// checked (a bounded cost: at most this much per file in flight); a larger one is read in
    /// two, its first `prefixBytes`, then, once the header shows its size plausible, the rest.
    /// One read instead of two, and no copy of the first piece into the whole (jpeg256: 4,000
    /// files of 20 KB).
    public static let wholeReadBytes = 1 << 20

    /// Reads the start of a file and classifies it.
    public func probe(_ file: SourceFile) -> Probe { load(file, readWhole: false).probe }

    /// Classifies a file from its first bytes and, with `readWhole`, when it is one image, reads
    /// it whole in the same open (refused unread when larger than its header can need).
    /// With `readWhole`, a PNG's libpng reader is kept after its header (`reading`) for
    /// `DecodeJob.run(_:file:format:header:decoders:plan:resize:page:reading:)` on these bytes.
    /// `opened`: the file already opened (by `ReadAhead`), read instead of opening it again.
    public func load(_ file: SourceFile, readWhole: Bool,
                     opened: InputFile? = nil) -> (probe: Probe, bytes: [UInt8]?, reading: PNGReading?) {
        do {
            let input = try opened ?? InputFile(file.path)
            let prefix = try input.prefix(readWhole && input.size <= Self.wholeReadBytes ? input.size : Self.prefixBytes)
            let (probe, reading) = try classify(prefix, of: input, file: file, keepReader: readWhole)
            guard readWhole, case .images(let found, _) = probe, found.count == 1 else { return (probe, nil, nil) }
            let c = found[0]
            return (probe, try decoders.read(input, after: prefix, format: c.format, header: c.header), reading)
        } catch let e as ImgConvError {
            return (.bad(e.at(file.relativePath)), nil, nil)
        } catch {
            return (.bad(ImgConvError(.internal, path: file.relativePath, "\(error)")), nil, nil)
        }
    }

    /// What a file is from its first bytes (`prefix`); with `keepReader`, a PNG's reader after
    /// its header.
    private func classify(_ prefix: [UInt8], of input: InputFile, file: SourceFile,
                          keepReader: Bool) throws -> (Probe, PNGReading?) {
        guard let format = ImageFormat.sniff(prefix[...]) else {
            return (.skip(input.size == 0 ? "empty file" : "not an image"), nil)
        }
        guard format.isDecodable else {
            return (.skip("unsupported format: \(format.rawValue.uppercased())"), nil)
        }
        let animated = format == .gif || format == .webp
        if animated && frames == .all {
            let headers = try decoders.frameHeaders(prefix, of: input, format: format)
            return (.images(headers.enumerated().map { Candidate(file: file, header: $1, format: format, page: $0) }, ignoredPages: 0), nil)
        }
        let (header, reading) = try decoders.header(prefix, of: input, format: format, keepReader: keepReader)
        let first = Candidate(file: file, header: header, format: format, page: 0)
        guard format == .tiff || animated, header.pages > 1 else { return (.images([first], ignoredPages: 0), reading) }
        switch animated ? frames.rawValue : tiffPages.rawValue {
        case "first":
            return (.images([first], ignoredPages: header.pages - 1), nil)
        case "error":
            if animated {
                throw ImgConvError(.unsupported, "\(format == .gif ? "GIF" : "WebP") has \(header.pages) frames (--frames first or all converts it)")
            }
            throw ImgConvError(.unsupported, "TIFF has \(header.pages) pages (--tiff-pages first or all converts it)")
        default:
            var pages = [first]
            for page in 1..<header.pages {
                pages.append(Candidate(file: file, header: try decoders.header(prefix, of: input, format: format, page: page),
                                       format: format, page: page))
            }
            return (.images(pages, ignoredPages: 0), nil)
        }
    }
}

/// One decoded image, in its plan's layout, with the SHA-256 of its file.
public struct DecodedImage: Sendable {
    public var pixels: [UInt8]
    public var sha256: String
    /// A problem the decoder recovered from (accepted on request).
    public var warning: String?
}

/// The per-image job of a conversion (and of `verify --against`): read, hash, decode, orient and
/// conform one file (one page) to the plan. Runs on any thread.
public enum DecodeJob {
    /// `opened`: the file already opened (by `ReadAhead`), read instead of opening it again.
    /// - Throws: `ImgConvError` naming the file by its relative path.
    public static func run(_ file: SourceFile, format: ImageFormat, header: ImageHeader?, decoders: Decoders,
                           plan: ImagePlan, resize: Bool, page: Int = 0, opened: InputFile? = nil) throws -> DecodedImage {
        let bytes: [UInt8], known: ImageHeader
        do {
            let input = try opened ?? InputFile(file.path)
            if let header {
                known = header
                bytes = try decoders.read(input, format: format, header: header)
            } else {
                let prefix = try input.prefix(HeaderPass.prefixBytes)
                known = try decoders.header(prefix, of: input, format: format, page: page)
                bytes = try decoders.read(input, after: prefix, format: format, header: known)
            }
        } catch let e as ImgConvError {
            throw e.at(file.relativePath)
        }
        return try run(bytes, file: file, format: format, header: known, decoders: decoders, plan: plan, resize: resize, page: page)
    }

    /// The same for bytes already read; `reading`, a PNG's reader kept by `HeaderPass.load`
    /// after the header of these bytes.
    /// - Throws: `ImgConvError` naming the file by its relative path.
    public static func run(_ bytes: [UInt8], file: SourceFile, format: ImageFormat, header: ImageHeader?, decoders: Decoders,
                           plan: ImagePlan, resize: Bool, page: Int, reading: PNGReading? = nil) throws -> DecodedImage {
        do {
            let digest = sha256Hex(bytes)
            func conformed(_ image: PixelBuffer) throws -> DecodedImage {
                if !resize && (image.width != plan.width || image.height != plan.height) {
                    throw ImgConvError(.shapeMismatch, "image is \(image.height)x\(image.width), expected \(plan.height)x\(plan.width)")
                }
                return DecodedImage(pixels: try plan.conform(image), sha256: digest, warning: image.warning)
            }
            let h = try header ?? decoders.header(bytes, format: format, page: page)
            // The decoded image, then its conformed copy: tried before they are made, since a
            // Swift allocation that fails ends the process.
            let decoded = checkedByteCount([h.width, h.height, h.channels], elementSize: h.depth.byteSize) ?? Int.max / 4
            try MemoryCeiling.reserve(decoded + min(plan.bytesPerImage, Int.max / 4),
                                      for: "decoding a \(h.width)x\(h.height) image")
            var request: FrameRequest?
            if let pool = decoders.animations, format == .gif || format == .webp, h.pages > 1 {
                switch pool.acquire(key: digest, frame: page) {
                case .kept(let kept): if let d = kept as? DecodedImage { return d }
                case .decode(let r): request = r
                }
                // The frames passed on the way to this one are kept for their own requests.
                request?.passing = { [weak request] i, image in
                    if let d = try? conformed(image) { request?.keep(d, bytes: d.pixels.count, frame: i) }
                }
            }
            let image: PixelBuffer
            do {
                image = try decoders.decode(bytes, format: format, header: h, page: page,
                                            target: resize ? (plan.width, plan.height) : nil, request: request,
                                            reading: reading)
                request?.release(delivered: true)
            } catch let e as ImgConvError where (format == .gif || format == .webp) && h.pages > 1 {
                request?.release(delivered: false)
                throw ImgConvError(e.code, "frame \(page): \(e.message)")
            } catch {
                request?.release(delivered: false)
                throw error
            }
            return try conformed(image)
        } catch let e as ImgConvError {
            throw e.at(file.relativePath)
        }
    }
}
