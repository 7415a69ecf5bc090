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

/// One image to convert: a file (and, for multipage TIFF, a page) with its header.
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

    public init(decoders: Decoders, tiffPages: TIFFPages) {
        self.decoders = decoders
        self.tiffPages = tiffPages
    }

    /// What the header pass learns of one file.
    public enum Probe {
        /// Its images (one, or one per TIFF page), and the TIFF pages left out.
        case images([Candidate], ignoredPages: Int)
        /// Not an image we decode: skipped, not an error.
        case skip(String)
        /// An image we should decode but cannot.
        case bad(ImgConvError)
    }

    /// Enough for the header of almost every file; the rest are read whole on a second try.
    public static let prefixBytes = 16 * 1024

    /// Reads the start of a file and classifies it.
    public func probe(_ file: SourceFile) -> Probe {
        do {
            let (bytes, size) = try readFilePrefix(file.path, count: Self.prefixBytes)
            return classify(bytes, fileSize: size, file: file)
        } catch let e as ImgConvError {
            return .bad(e.at(file.relativePath))
        } catch {
            return .bad(ImgConvError(.internal, path: file.relativePath, "\(error)"))
        }
    }

    /// What a file is from its first bytes (`bytes`, of `fileSize`; the whole file is read when
    /// the header lies further on).
    public func classify(_ bytes: [UInt8], fileSize size: Int, file: SourceFile) -> Probe {
        var bytes = bytes
        do {
            guard let format = ImageFormat.sniff(bytes[...]) else {
                return .skip(size == 0 ? "empty file" : "not an image")
            }
            guard format.isDecodable else {
                return .skip("unsupported format: \(format.rawValue.uppercased())")
            }
            var header: ImageHeader
            do {
                header = try decoders.header(bytes, format: format)
            } catch let e as ImgConvError where e.code == .corruptInput && size > bytes.count {
                // The header may lie past the prefix (a TIFF directory at the end of the file).
                bytes = try readFile(file.path)
                header = try decoders.header(bytes, format: format)
            }
            let first = Candidate(file: file, header: header, format: format, page: 0)
            guard format == .tiff, header.pages > 1 else { return .images([first], ignoredPages: 0) }
            switch tiffPages {
            case .first:
                return .images([first], ignoredPages: header.pages - 1)
            case .error:
                throw ImgConvError(.unsupported, "TIFF has \(header.pages) pages (--tiff-pages first or all converts it)")
            case .all:
                if bytes.count < size { bytes = try readFile(file.path) }
                var pages = [first]
                for page in 1..<header.pages {
                    pages.append(Candidate(file: file, header: try decoders.header(bytes, format: format, page: page),
                                           format: format, page: page))
                }
                return .images(pages, ignoredPages: 0)
            }
        } catch let e as ImgConvError {
            return .bad(e.at(file.relativePath))
        } catch {
            return .bad(ImgConvError(.internal, path: file.relativePath, "\(error)"))
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
    /// - Throws: `ImgConvError` naming the file by its relative path.
    public static func run(_ file: SourceFile, format: ImageFormat, header: ImageHeader?, decoders: Decoders,
                           plan: ImagePlan, resize: Bool, page: Int = 0) throws -> DecodedImage {
        let bytes: [UInt8]
        do {
            bytes = try readFile(file.path)
        } catch let e as ImgConvError {
            throw e.at(file.relativePath)
        }
        return try run(bytes, file: file, format: format, header: header, decoders: decoders, plan: plan, resize: resize, page: page)
    }

    /// The same for bytes already read.
    /// - Throws: `ImgConvError` naming the file by its relative path.
    public static func run(_ bytes: [UInt8], file: SourceFile, format: ImageFormat, header: ImageHeader?, decoders: Decoders,
                           plan: ImagePlan, resize: Bool, page: Int) throws -> DecodedImage {
        do {
            let digest = sha256Hex(bytes)
            let h = try header ?? decoders.header(bytes, format: format, page: page)
            // The decoded image, then its conformed copy: tried before they are made, since a
            // Swift allocation that fails ends the process.
            let decoded = checkedByteCount([h.width, h.height, h.channels], elementSize: h.depth.byteSize) ?? Int.max / 4
            try MemoryCeiling.reserve(decoded + min(plan.bytesPerImage, Int.max / 4),
                                      for: "decoding a \(h.width)x\(h.height) image")
            let image = try decoders.decode(bytes, format: format, header: h, page: page,
                                            target: resize ? (plan.width, plan.height) : nil)
            if !resize && (image.width != plan.width || image.height != plan.height) {
                throw ImgConvError(.shapeMismatch, "image is \(image.height)x\(image.width), expected \(plan.height)x\(plan.width)")
            }
            return DecodedImage(pixels: try plan.conform(image), sha256: digest, warning: image.warning)
        } catch let e as ImgConvError {
            throw e.at(file.relativePath)
        }
    }
}
