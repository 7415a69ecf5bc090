#if canImport(Glibc)
import Glibc
#endif
import FoundationEssentials
import ImgConvCore
import ImgConvFormats

/// What `export` wrote.
public struct ExportSummary: Sendable {
    public var images: Int
    public var classes: Int
    /// Folder name of each class, in label order (also in `classes.txt`).
    public var folders: [String]
    /// The splits written (each in its own folder when there are several).
    public var splits: [String]
    /// Bits per sample of the files written: 8 or 16 (PNG), 32 or 64 (TIFF).
    public var bitDepth: Int
    /// `png` or `tiff`.
    public var fileFormat: String
    /// The files' samples: `float`, `int` (signed) or `uint`.
    public var sampleKind: String
}

/// Writes a container's images back to class folders: `OUTDIR/<class>/<index>.png`, the index
/// being the image's position in the tensor, zero-padded, so that `to-npz` of the folder (with
/// `--classes-file OUTDIR/classes.txt` when the names do not sort in label order) gives back the
/// images and labels in class order, bit for bit. uint8 images become 8-bit PNGs, uint16 16-bit;
/// float32 images become 32-bit floating-point TIFFs (`<index>.tiff`; float64, int32 and uint32
/// images TIFFs of their own type), and float16 images float32 ones,
/// widened to float32 (exactly: every float16 is a float32), which `to-npz --dtype float32` (or
/// `auto`) reads back bit for bit (`--dtype float16` for float16).
///
/// Class names come from a file someone else may have made, so each becomes a single, harmless
/// folder name (see `folderName(for:)`): nothing is written outside OUTDIR, and a class folder
/// that is a symbolic link is refused.
public struct Exporter {
    /// How the input's pairs are found (IDX labels file, `--xs`/`--ys`, layout).
    public var read = DatasetReadOptions()
    public var level = 6

    public init(labels: String? = nil) { read.labelsFile = labels }

    public init(read: DatasetReadOptions) { self.read = read }

    /// A class name as one folder name: `/`, `\`, NUL and control characters become `_`; `..`
    /// becomes `__`; a leading `.` (hidden, and ignored by the scanner) becomes `_`; empty becomes
    /// `_`; at most 255 bytes.
    public static func folderName(for name: String) -> String {
        var text = String(String.UnicodeScalarView(name.unicodeScalars.map { s -> Unicode.Scalar in
            s == "/" || s == "\\" || s.value < 0x20 || (0x7F...0x9F).contains(s.value) ? "_" : s
        }))
        while text.contains("..") { text = text.replacing("..", with: "__") }
        if text.hasPrefix(".") { text = "_" + text.dropFirst() }
        if text.isEmpty || text == "__MACOSX" { text = "_" + text }
        while text.utf8.count > 255 { text.removeLast() }
        return text
    }

    /// Folder names for all classes, unique (a clash gets `~<index>`).
    public static func folderNames(for names: [String]) -> [String] {
        var used = Set<String>()
        return names.enumerated().map { index, name in
            var folder = folderName(for: name)
            if used.contains(folder) {
                let suffix = "~\(index)"
                while folder.utf8.count + suffix.utf8.count > 255 { folder.removeLast() }
                folder += suffix
            }
            used.insert(folder)
            return folder
        }
    }

    /// - Throws: `ImgConvError`: `.unsupported` for images neither PNG nor the float TIFF holds
    ///   (signed integers, float64, more than 4 channels), `.corruptInput` for a malformed input,
    ///   `.io` when OUTDIR cannot be written.
    public func export(input: String, to directory: String) throws -> ExportSummary {
        try export(LabeledDataset(path: input, options: read), to: directory)
    }

    /// Exports every split of a dataset: with one split, `OUTDIR/<class>/<index>.png`; with more,
    /// `OUTDIR/<split>/<class>/<index>.png` (the index within the split), the split-folder layout
    /// `to-npz` reads back as the same splits. `OUTDIR/classes.txt` lists the class folders in
    /// label order; every class gets its folder in every split, so the labels come back the same.
    public func export(_ dataset: LabeledDataset, to directory: String) throws -> ExportSummary {
        try dataset.requireSplits()
        let input = dataset.path
        // Every split is checked before anything is written.
        var plans: [(LabeledSplit, ImageGeometry, [Int64])] = []
        for split in dataset.splits {
            let g = try dataset.geometry(split)
            guard [.uint8, .uint16, .float16, .float32, .float64, .int32, .uint32].contains(g.dtype) else {
                throw ImgConvError(.unsupported, path: input,
                                   "export writes PNG (uint8, uint16) and TIFF (float16, float32, float64, int32, uint32) images, not \(g.dtype.rawValue)")
            }
            guard (1...4).contains(g.channels) else {
                throw ImgConvError(.unsupported, path: input,
                                   "\(Self.writesTIFF(g.dtype) ? "the TIFF writer takes" : "PNG holds") 1 to 4 channels, \(split.imagesName) has \(g.channels)")
            }
            if let first = plans.first?.1, first.dtype != g.dtype {
                throw ImgConvError(.unsupported, path: input, "\(split.imagesName) is \(g.dtype.rawValue) but \(plans[0].0.imagesName) is \(first.dtype.rawValue)")
            }
            plans.append((split, g, try dataset.labels(split)))
        }
        let dtype = plans[0].1.dtype
        let tiff = Self.writesTIFF(dtype)
        let fileFormat = tiff ? "tiff" : "png"
        let folders = Self.folderNames(for: dataset.classNames)
        let bySplit = plans.count > 1
        // Built beside the target and moved into place when complete: a failure or a signal
        // leaves no partial folder, and an earlier export stays until the new one replaces it.
        let output = try AtomicOutputFolder(target: directory, foreignEntry: Self.foreignEntry)
        do {
            let root = output.temporaryPath
            for (split, geometry, labels) in plans {
                let base = bySplit ? root + "/" + Self.folderName(for: split.name) : root
                if bySplit { try makeFolder(base) }
                for folder in folders { try makeFolder(base + "/" + folder) }
                try exportImages(of: split, in: dataset, geometry: geometry, labels: labels, folders: folders, into: base, fileFormat: fileFormat)
            }
            try writeNewFile(root + "/classes.txt", Array((folders.joined(separator: "\n") + "\n").utf8))
            try output.commit()
        } catch {
            output.abort()
            throw error
        }
        return ExportSummary(images: dataset.imageCount, classes: dataset.classNames.count, folders: folders,
                             splits: plans.map(\.0.name), bitDepth: dtype == .float16 ? 32 : dtype.byteSize * 8, fileFormat: fileFormat,
                             sampleKind: dtype.isFloatingPoint ? "float" : dtype.isSigned ? "int" : "uint")
    }

    /// Writes one split's images into `base/<class>/<index>.<ext>`.
    private func exportImages(of split: LabeledSplit, in dataset: LabeledDataset, geometry g: ImageGeometry, labels: [Int64],
                              folders: [String], into base: String, fileFormat: String) throws {
        let (_, images) = try dataset.openImages(split)
        let label = dataset.storageName(split.imagesName)
        let count = g.count
        let digits = String(max(count - 1, 0)).count
        // A stored input is read where it lies (memory-mapped); others through `scratch`.
        var scratch: [UInt8] = []
        for i in 0..<count {
            let file = try images.next(g.bytesPerImage, scratch: &scratch) { image -> [UInt8] in
                guard image.count == g.bytesPerImage else {
                    throw ImgConvError(.corruptInput, path: dataset.path, "\(label): data ends in image \(i) of \(count)")
                }
                return try encode(image, dtype: g.dtype, width: g.width, height: g.height, channels: g.channels, nchw: g.nchw)
            }
            let index = String(i)
            let name = String(repeating: "0", count: digits - index.count) + index + "." + fileFormat
            try writeNewFile(base + "/" + folders[Int(labels[i])] + "/" + name, file)
        }
        // Reading to the end runs the stream's own checks (CRC-32, exact length).
        if try images.next(1, scratch: &scratch, { $0.count }) != 0 {
            throw ImgConvError(.corruptInput, path: dataset.path, "\(label): more data than its shape holds")
        }
    }

    /// Whether images of this type are written as TIFF (PNG holds only uint8 and uint16).
    static func writesTIFF(_ dtype: DType) -> Bool { dtype != .uint8 && dtype != .uint16 }

    /// One image's file: PNG for uint8/uint16, a TIFF of the same type for float32, float64,
    /// int32 and uint32, float32 TIFF for float16 (channels-first samples interleaved first,
    /// float16 widened).
    private func encode(_ image: UnsafeRawBufferPointer, dtype: DType, width: Int, height: Int, channels: Int,
                        nchw: Bool) throws -> [UInt8] {
        let plane = height * width
        switch dtype {
        case .float32, .float64, .int32, .uint32:
            guard nchw && channels > 1 else {
                return try TIFFEncoder.encode(image, dtype: dtype, width: width, height: height, channels: channels)
            }
            let pixels = Self.interleave(image, channels: channels, plane: plane, sampleSize: dtype.byteSize)
            return try pixels.withUnsafeBytes { try TIFFEncoder.encode($0, dtype: dtype, width: width, height: height, channels: channels) }
        case .float16:
            let samples = nchw ? Self.interleave(image, channels: channels, plane: plane, sampleSize: 2) : Array(image)
            let widened = Self.widenFloat16(samples)
            return try widened.withUnsafeBytes { try TIFFEncoder.encode($0, dtype: .float32, width: width, height: height, channels: channels) }
        default:
            let bitDepth = dtype.byteSize * 8
            guard nchw && channels > 1 else {
                return try PNGEncoder.encode(image, width: width, height: height, channels: channels, bitDepth: bitDepth, level: level)
            }
            let pixels = Self.interleave(image, channels: channels, plane: plane, sampleSize: dtype.byteSize)
            return try pixels.withUnsafeBytes {
                try PNGEncoder.encode($0, width: width, height: height, channels: channels, bitDepth: bitDepth, level: level)
            }
        }
    }

    /// float16 samples (little-endian) as float32, each exactly. A NaN keeps its sign and payload
    /// (shifted into place) and stays signalling if it was: widened bit by bit, since a hardware
    /// conversion would make it quiet.
    static func widenFloat16(_ half: [UInt8]) -> [Float] {
        (0..<half.count / 2).map { k in
            let h = UInt16(half[2 * k]) | UInt16(half[2 * k + 1]) << 8
            guard h & 0x7C00 == 0x7C00, h & 0x03FF != 0 else { return Float(Float16(bitPattern: h)) }
            return Float(bitPattern: UInt32(h & 0x8000) << 16 | 0x7F80_0000 | UInt32(h & 0x03FF) << 13)
        }
    }

    /// What keeps a folder from being an earlier export, which a new one may replace; nil when it
    /// is one: `classes.txt`, class folders it lists (or split folders of them) and in those only
    /// `<digits>.png`/`.tiff` files. Anything else (a dataset's own images, other files, a FIFO)
    /// is named, and the folder is not replaced.
    static func foreignEntry(in folder: String) -> String? {
        func kind(_ path: String) -> (mode_t, String) {
            var st = stat()
            guard lstat(path, &st) == 0 else { return (0, "unreadable") }
            return (st.st_mode & S_IFMT, fileKindName(st.st_mode))
        }
        let (classesMode, classesKind) = kind(folder + "/classes.txt")
        guard classesMode == S_IFREG, let text = try? readFile(folder + "/classes.txt", maxBytes: 16 << 20) else {
            return classesMode == 0 ? "no classes.txt" : "classes.txt (\(classesKind))"
        }
        let classes = Set(String(decoding: text, as: UTF8.self).split(separator: "\n").map(String.init))
        let fm = FileManager.default
        func foreignInClass(_ path: String, _ shown: String) -> String? {
            guard let files = try? fm.contentsOfDirectory(atPath: path) else { return "\(shown) (\(kind(path).1))" }
            for name in files.sorted() {
                let parts = name.split(separator: ".", maxSplits: 1)
                let exported = parts.count == 2 && ["png", "tiff"].contains(String(parts[1])) && !parts[0].isEmpty
                    && parts[0].allSatisfy { $0.isASCII && $0.isNumber } && kind(path + "/" + name).0 == S_IFREG
                if !exported { return "\(shown)/\(name)" }
            }
            return nil
        }
        guard let entries = try? fm.contentsOfDirectory(atPath: folder) else { return "its entries (unreadable)" }
        for name in entries.sorted() where name != "classes.txt" {
            let path = folder + "/" + name
            if classes.contains(name) {
                if let found = foreignInClass(path, name) { return found }
                continue
            }
            guard kind(path).0 == S_IFDIR, let inner = try? fm.contentsOfDirectory(atPath: path), !inner.isEmpty else {
                return "\(name) (\(kind(path).1), not a class in classes.txt)"
            }
            for c in inner.sorted() {
                guard classes.contains(c) else { return "\(name)/\(c) (not a class in classes.txt)" }
                if let found = foreignInClass(path + "/" + c, name + "/" + c) { return found }
            }
        }
        return nil
    }

    /// Creates a folder (or accepts an existing one); a symbolic link or a file there is refused.
    private func makeFolder(_ path: String) throws {
        if mkdir(path, 0o755) == 0 { return }
        let code = errno
        var st = stat()
        guard code == EEXIST, lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
            throw ImgConvError(.io, path: path, code == EEXIST ? "exists and is not a folder (symbolic links are not followed)"
                                                                : "cannot create the folder: \(errnoText(code))")
        }
    }

    /// Channels-first (C, H, W) samples to interleaved (H, W, C).
    static func interleave(_ planar: UnsafeRawBufferPointer, channels: Int, plane: Int, sampleSize: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: planar.count)
        for c in 0..<channels {
            for p in 0..<plane {
                for b in 0..<sampleSize {
                    out[(p * channels + c) * sampleSize + b] = planar[(c * plane + p) * sampleSize + b]
                }
            }
        }
        return out
    }
}
