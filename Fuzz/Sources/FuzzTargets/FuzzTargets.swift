#if canImport(Glibc)
import Glibc
#endif
import CFuzzSupport
import ImgConvCodecs
import ImgConvCore
import ImgConvFormats

/// One function per fuzz target, each feeding one input to one of imgconv's parsers through its
/// public entry. Errors are the expected outcome for most inputs and are ignored; what counts is
/// a crash (a Swift runtime trap, an AddressSanitizer or UndefinedBehaviorSanitizer report), a
/// hang, a memory blow-up, or a broken invariant (checked with `precondition`, which crashes).
public enum FuzzTargets {
    /// The targets by name: the `fuzz-<name>` executables, the `Fuzz/seeds/<name>` and
    /// `Tests/Fixtures/crashers/<name>` folders.
    public static let all: [String: ([UInt8]) -> Void] = [
        "npy": npy, "zip": zip, "idx": idx, "exif": exif, "manifest": manifest, "csv": csv,
        "png": png, "jpeg": jpeg, "tiff": tiff, "bmp": bmp, "gif": gif, "webp": webp, "h5": h5,
    ]

    /// The fuzz target being run (libFuzzer's callback is a C function pointer: it cannot capture).
    private static var current: (([UInt8]) -> Void)?

    /// Hands the process to libFuzzer with `target` as the function under test. Arguments are
    /// libFuzzer's: folders are corpora to fuzz from, files are inputs to replay once each.
    public static func run(_ name: String) -> Never {
        guard let target = all[name] else { fatalError("no fuzz target '\(name)'") }
        current = target
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in
            FuzzTargets.current!(size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size)))
            return 0
        })
    }

    // MARK: - Tensor containers

    /// The NPY header on its own, then a whole `.npy` file through `NPYFileReader` (header read
    /// from a stream, data length from the shape, the exact-length check).
    static func npy(_ bytes: [UInt8]) {
        if let (header, dataOffset) = try? NPYHeader.parse(bytes, path: "fuzz.npy") {
            precondition(dataOffset <= bytes.count, "data offset past the input")
            precondition(header.shape.allSatisfy { $0 >= 0 }, "negative dimension accepted")
        }
        let path = MemoryFile.shared.hold(bytes)
        guard let reader = try? NPYFileReader(path: path), let (_, stream) = try? reader.open(reader.name) else { return }
        drain(stream)
    }

    /// A ZIP archive: end records, ZIP64 locator and end record, central directory, ZIP64 extras,
    /// local headers; then every member inflated with its size and CRC-32 checked; then the same
    /// bytes as an `.npz` (each member's NPY header, exact length, class names).
    static func zip(_ bytes: [UInt8]) {
        let path = MemoryFile.shared.hold(bytes)
        guard let zip = try? ZipReader(path: path) else { return }
        for member in zip.members {
            precondition(member.dataOffset + member.compressedSize <= bytes.count, "member data past the end")
            if let stream = try? zip.open(member) { drain(stream) }
        }
        guard let npz = try? NPZReader(path: path) else { return }
        for name in npz.tensorNames {
            if let (_, stream) = try? npz.open(name) { drain(stream) }
        }
        _ = try? npz.classNames()
    }

    /// An IDX file (plain or gzip) as images, then as a labels file: header, the length against
    /// the dimensions, the data converted to little-endian.
    static func idx(_ bytes: [UInt8]) {
        let path = MemoryFile.shared.hold(bytes)
        if let reader = try? IDXReader(images: path), let (_, stream) = try? reader.open("trainXs") {
            drain(stream)
        }
        if let reader = try? IDXReader(images: path, labels: path), let (_, stream) = try? reader.open("trainYs") {
            drain(stream)
        }
    }

    // MARK: - Metadata and lists

    /// The EXIF Orientation reader on every container it is given: a JPEG's APP1, a PNG's eXIf,
    /// and a bare TIFF-structured block. The answer is always 1...8.
    static func exif(_ bytes: [UInt8]) {
        for orientation in [ExifOrientation.fromJPEG(bytes), ExifOrientation.fromPNG(bytes),
                            ExifOrientation.fromTIFFBlock(bytes[...]),
                            ExifOrientation.fromWebP(exif: bytes, xmp: nil), ExifOrientation.fromWebP(exif: nil, xmp: bytes)] {
            precondition((1...8).contains(orientation), "orientation \(orientation)")
        }
    }

    /// The manifest JSON; one that decodes must survive encoding and decoding unchanged (`verify`
    /// compares manifests it re-reads).
    static func manifest(_ bytes: [UInt8]) {
        guard let manifest = try? Manifest.decode(bytes, path: "fuzz.json") else { return }
        guard let encoded = try? manifest.encoded() else { preconditionFailure("a decoded manifest does not encode") }
        guard let again = try? Manifest.decode(encoded, path: "again.json") else {
            preconditionFailure("an encoded manifest does not decode")
        }
        precondition(again == manifest, "manifest changed in an encode/decode round trip")
    }

    /// An HDF5 file through `HDF5Reader`: the root group's links (external ones refused), every
    /// dataset's type, shape, layout and storage checks (external storage, virtual sources,
    /// unallocated chunks), its data streamed in slabs, the string attributes (class names, the
    /// embedded manifest) and the filter pipeline `inspect` describes.
    static func h5(_ bytes: [UInt8]) {
        let path = MemoryFile.shared.hold(bytes)
        guard HDF5Reader.hasSignature(path), let reader = try? HDF5Reader(path: path) else { return }
        _ = try? reader.classNames()
        _ = try? reader.embeddedManifest()
        for name in reader.tensorNames {
            _ = try? reader.compression(of: name)
            guard let (header, stream) = try? reader.open(name) else { continue }
            precondition(header.shape.allSatisfy { $0 >= 0 }, "negative dimension accepted")
            drain(stream)
        }
    }

    /// The CSV list (`--list`): UTF-8, quoting, line ends, the header row, row shapes, labels.
    static func csv(_ bytes: [UInt8]) {
        _ = try? ListScanner.parseCSVForFuzzing(bytes)
    }

    // MARK: - Images

    /// Limits for fuzzed images: small enough that one input decodes in well under a second under
    /// AddressSanitizer and stays far below libFuzzer's memory limit (the real ones, 178,956,970
    /// pixels and a quarter of the memory, are checked by the tests of the limits).
    static let limits = DecodeLimits(maxPixels: 1 << 22, maxBytes: 256 << 20)

    static func decoders(allowTruncatedJPEG: Bool = false, jpegDraft: Bool = false) -> Decoders {
        var options = DecodeOptions()
        options.limits = limits
        options.allowTruncatedJPEG = allowTruncatedJPEG
        options.jpegDraft = jpegDraft
        return Decoders(options: options)
    }

    /// Header, then decode; what is decoded must be what the header announced (the converter
    /// plans the tensor from headers before any pixel is decoded).
    @discardableResult
    static func decode(_ bytes: [UInt8], _ format: ImageFormat, with decoders: Decoders, page: Int = 0) -> ImageHeader? {
        guard let header = try? decoders.header(bytes, format: format, page: page) else { return nil }
        guard let image = try? decoders.decode(bytes, format: format, header: header, page: page) else { return header }
        precondition(image.width == header.orientedWidth && image.height == header.orientedHeight
                     && image.channels == header.channels && image.depth == header.depth,
                     "decoded \(image.width)x\(image.height)x\(image.channels) \(image.depth), header said \(header)")
        return header
    }

    static func png(_ bytes: [UInt8]) {
        decode(bytes, .png, with: decoders())
    }

    /// Strict, then accepting warnings (truncated files, the libjpeg fallback's recovered errors),
    /// then a DCT-scaled ("draft") decode at 1/2, 1/4 or 1/8 (chosen by the input's length).
    static func jpeg(_ bytes: [UInt8]) {
        decode(bytes, .jpeg, with: decoders())
        let lenient = decoders(allowTruncatedJPEG: true)
        guard let header = decode(bytes, .jpeg, with: lenient) else { return }
        let d = [2, 4, 8][bytes.count % 3]
        let target = (width: max(1, header.orientedWidth / d), height: max(1, header.orientedHeight / d))
        if let image = try? decoders(allowTruncatedJPEG: true, jpegDraft: true)
            .decode(bytes, format: .jpeg, header: header, target: target) {
            precondition(image.width >= target.width && image.height >= target.height
                         && image.width <= header.orientedWidth && image.height <= header.orientedHeight,
                         "draft decode is \(image.width)x\(image.height) for \(target) of \(header)")
        }
    }

    /// The first page, then up to two more when the file has several (IFD chains, SubIFDs).
    static func tiff(_ bytes: [UInt8]) {
        let tiff = decoders()
        guard let first = decode(bytes, .tiff, with: tiff) else { return }
        for page in 1..<max(1, min(first.pages, 3)) { decode(bytes, .tiff, with: tiff, page: page) }
    }

    /// imgconv's own BMP reader, on BMP files and bare DIBs alike: every header size, planes and
    /// depths, compressions, bit-field masks, palettes (gray or not, cut short), pixel offsets, row
    /// strides, RLE8/RLE4 streams (deltas, absolute runs, early ends). Then the header of the
    /// file's first half, as the header pass reads a prefix: refused or equal to the whole file's,
    /// unless the half ends within the first 257 palette entries (a palette cut short may not be
    /// gray; the header pass's 16 KiB hold more than 257 entries, and more than 256 that are not
    /// gray are refused).
    static func bmp(_ bytes: [UInt8]) {
        let bmp = decoders()
        guard let header = decode(bytes, .bmp, with: bmp) else { return }
        let half = Array(bytes.prefix(bytes.count / 2))
        if let early = try? bmp.header(half, format: .bmp), early != header {
            precondition(half.count < 14 + 124 + 257 * 4, "header from \(half.count) bytes is \(early), the file's is \(header)")
        }
    }

    /// The first frame; then, for an animation, frames 3, 2, 1 (as many as it has) through one
    /// `AnimationPool`: frame 3 composed from the start keeps frames 1 and 2, which the pool then
    /// hands back. Each must equal the frame decoded on its own from the start.
    static func gif(_ bytes: [UInt8]) { animation(bytes, .gif) }

    /// As `gif`: libwebp's still decoder, or WebPAnimDecoder's frames.
    static func webp(_ bytes: [UInt8]) { animation(bytes, .webp) }

    static func animation(_ bytes: [UInt8], _ format: ImageFormat) {
        let plain = decoders()
        guard let first = decode(bytes, format, with: plain), first.pages > 1 else { return }
        var options = DecodeOptions()
        options.limits = limits
        options.allFrames = true
        let pooled = Decoders(options: options)
        for page in (1..<min(first.pages, 4)).reversed() {
            guard let header = try? plain.header(bytes, format: format, page: page) else { continue }
            let alone = try? plain.decode(bytes, format: format, header: header, page: page)
            switch pooled.animations?.acquire(key: "fuzz", frame: page) {
            case .kept(let kept)?:
                precondition(kept as? [UInt8] == alone?.bytes, "frame \(page) kept by the pool differs")
            case .decode(let request)?:
                request.passing = { i, image in request.keep(image.bytes, bytes: image.bytes.count, frame: i) }
                let viaPool = try? pooled.decode(bytes, format: format, header: header, page: page, request: request)
                request.release(delivered: viaPool != nil)
                precondition(alone?.bytes == viaPool?.bytes, "frame \(page) differs through the pool")
                if let image = viaPool {
                    precondition(image.width == header.orientedWidth && image.height == header.orientedHeight
                                 && image.channels == header.channels, "frame \(page) is not what its header said")
                }
            case nil:
                preconditionFailure("no animation pool with allFrames")
            }
        }
    }

    // MARK: - Helpers

    /// Reads a stream to its end (or 64 MiB), so its end-of-data checks run.
    static func drain(_ stream: ByteStream) {
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var total = 0
        while total < 1 << 26 {
            guard let n = try? buffer.withUnsafeMutableBytes({ try stream.read(into: $0) }), n > 0 else { return }
            precondition(n <= buffer.count, "read returned more than asked")
            total += n
        }
    }
}

/// The fuzz input as a file for the readers that take a path: an in-memory file, named by
/// `/proc/self/fd/N`, rewritten for every input.
final class MemoryFile {
    static let shared = MemoryFile()
    let fd: Int32
    let path: String

    private init() {
        fd = fuzz_memfd()
        precondition(fd >= 0, "memfd_create failed")
        path = "/proc/self/fd/\(fd)"
    }

    /// Replaces the file's contents; returns its path.
    func hold(_ bytes: [UInt8]) -> String {
        precondition(ftruncate(fd, 0) == 0, "ftruncate failed")
        var done = 0
        bytes.withUnsafeBytes { buf in
            while done < buf.count {
                let n = pwrite(fd, buf.baseAddress! + done, buf.count - done, off_t(done))
                precondition(n > 0, "pwrite failed")
                done += n
            }
        }
        return path
    }
}
