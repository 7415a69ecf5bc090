#if canImport(Glibc)
import Glibc
#endif
import Foundation
import ImgConvCore
import ImgConvFormats

/// What `export` wrote.
public struct ExportSummary: Sendable {
    public var images: Int
    public var classes: Int
    /// Folder name of each class, in label order (also in `classes.txt`).
    public var folders: [String]
    /// Bits per sample of the files written: 8 or 16 (PNG), 32 (float TIFF).
    public var bitDepth: Int
    /// `png` or `tiff`.
    public var fileFormat: String
}

/// Writes a container's images back to class folders: `OUTDIR/<class>/<index>.png`, the index
/// being the image's position in the tensor, zero-padded, so that `to-npz` of the folder (with
/// `--classes-file OUTDIR/classes.txt` when the names do not sort in label order) gives back the
/// images and labels in class order, bit for bit. uint8 images become 8-bit PNGs, uint16 16-bit;
/// float32 images become 32-bit floating-point TIFFs (`<index>.tiff`), and float16 images too,
/// widened to float32 (exactly: every float16 is a float32), which `to-npz --dtype float32` (or
/// `auto`) reads back bit for bit (`--dtype float16` for float16).
///
/// Class names come from a file someone else may have made, so each becomes a single, harmless
/// folder name (see `folderName(for:)`): nothing is written outside OUTDIR, and a class folder
/// that is a symbolic link is refused.
public struct Exporter {
    public var labels: String?
    public var level = 6

    public init(labels: String? = nil) { self.labels = labels }

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
        let container = try openContainer(input, labels: labels)
        let manifest = try FormatConverter.manifest(of: container)
        let (labelsHeader, labelsStream) = try container.open("trainYs")
        guard labelsHeader.shape.count == 1, let labelType = DType(npyDescr: labelsHeader.descr), !labelType.isFloatingPoint else {
            throw ImgConvError(.unsupported, path: input, "\(container.storageName("trainYs")): labels must be 1-D integers")
        }
        let labels = try readIntegers(labelsStream, dtype: labelType, count: labelsHeader.shape[0], path: input,
                                      label: container.storageName("trainYs"))
        let names = try container.classNames() ?? manifest?.classes.map(\.name)
            ?? (0..<Int((labels.max() ?? -1) + 1)).map(String.init)
        if let bad = labels.firstIndex(where: { $0 < 0 || $0 >= names.count }) {
            throw ImgConvError(.corruptInput, path: input, "label \(labels[bad]) of image \(bad) is outside [0, \(names.count))")
        }

        let (header, images) = try container.open("trainXs")
        let dtype = DType(npyDescr: header.descr)
        guard let dtype, [.uint8, .uint16, .float16, .float32].contains(dtype) else {
            throw ImgConvError(.unsupported, path: input,
                               "export writes PNG (uint8, uint16) and TIFF (float16, float32) images, not \(dtype?.rawValue ?? header.descr)")
        }
        let float = dtype.isFloatingPoint
        let bitDepth = float ? 32 : dtype.byteSize * 8
        let fileFormat = float ? "tiff" : "png"
        let nchw = header.shape.count == 4 && manifest?.options.layout == "nchw"
        let (count, height, width, channels): (Int, Int, Int, Int)
        switch header.shape.count {
        case 4 where nchw: (count, channels, height, width) = (header.shape[0], header.shape[1], header.shape[2], header.shape[3])
        case 4: (count, height, width, channels) = (header.shape[0], header.shape[1], header.shape[2], header.shape[3])
        case 3: (count, height, width, channels) = (header.shape[0], header.shape[1], header.shape[2], 1)
        default: throw ImgConvError(.unsupported, path: input, "trainXs of shape \(header.shape) is not (N, H, W, C) or (N, H, W)")
        }
        guard (1...4).contains(channels) else {
            throw ImgConvError(.unsupported, path: input, "\(float ? "the TIFF writer takes" : "PNG holds") 1 to 4 channels, trainXs has \(channels)")
        }
        guard count == labels.count else {
            throw ImgConvError(.corruptInput, path: input, "\(labels.count) labels for \(count) images")
        }

        let folders = Self.folderNames(for: names)
        try makeFolder(directory)
        for folder in folders { try makeFolder(directory + "/" + folder) }
        let digits = String(max(count - 1, 0)).count
        let bytesPerImage = height * width * channels * dtype.byteSize
        // A stored input is read where it lies (memory-mapped); others through `scratch`.
        var scratch: [UInt8] = []
        for i in 0..<count {
            let file = try images.next(bytesPerImage, scratch: &scratch) { image -> [UInt8] in
                guard image.count == bytesPerImage else {
                    throw ImgConvError(.corruptInput, path: input, "\(container.storageName("trainXs")): data ends in image \(i) of \(count)")
                }
                return try encode(image, dtype: dtype, width: width, height: height, channels: channels, nchw: nchw)
            }
            let index = String(i)
            let name = String(repeating: "0", count: digits - index.count) + index + "." + fileFormat
            try writeFileAtomically(directory + "/" + folders[Int(labels[i])] + "/" + name, file, sync: false)
        }
        // Reading to the end runs the stream's own checks (CRC-32, exact length).
        if try images.next(1, scratch: &scratch, { $0.count }) != 0 {
            throw ImgConvError(.corruptInput, path: input, "\(container.storageName("trainXs")): more data than its shape holds")
        }
        try writeFileAtomically(directory + "/classes.txt", Array((folders.joined(separator: "\n") + "\n").utf8))
        return ExportSummary(images: count, classes: names.count, folders: folders, bitDepth: bitDepth, fileFormat: fileFormat)
    }

    /// One image's file: PNG for uint8/uint16, float32 TIFF for float16/float32 (channels-first
    /// samples interleaved first, float16 widened).
    private func encode(_ image: UnsafeRawBufferPointer, dtype: DType, width: Int, height: Int, channels: Int,
                        nchw: Bool) throws -> [UInt8] {
        let plane = height * width
        switch dtype {
        case .float32:
            guard nchw && channels > 1 else {
                return try TIFFEncoder.encodeFloat32(image, width: width, height: height, channels: channels)
            }
            let pixels = Self.interleave(image, channels: channels, plane: plane, sampleSize: 4)
            return try pixels.withUnsafeBytes { try TIFFEncoder.encodeFloat32($0, width: width, height: height, channels: channels) }
        case .float16:
            let samples = nchw ? Self.interleave(image, channels: channels, plane: plane, sampleSize: 2) : Array(image)
            let widened = Self.widenFloat16(samples)
            return try widened.withUnsafeBytes { try TIFFEncoder.encodeFloat32($0, width: width, height: height, channels: channels) }
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
