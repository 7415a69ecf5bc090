#if canImport(Glibc)
import Glibc
#endif
import ImgConvCore

/// What a path looks like before it is opened: a folder and its names, or a file and its first
/// bytes.
public struct ContainerProbe {
    public let path: String
    public let isFolder: Bool
    /// The folder's names (not starting with `.`), sorted; empty for a file.
    public let entries: [String]
    /// The file's first 8 bytes; empty for a folder.
    public let head: [UInt8]
}

/// How any writer is set up: the options of the to-* commands and `convert` that shape a
/// container (not its contents).
public struct WriterSettings: Sendable {
    /// `.npz`: deflated members; HDF5: shuffle + gzip.
    public var compress = false
    /// Deflate level; nil: the format's default (6; HDF5 4).
    public var level: Int?
    /// Compressing threads (`.npz --compress`, HDF5 `--compress`); the output does not depend on it.
    public var threads = 1
    /// IDX: gzip-compressed files.
    public var gzip = false
    /// IDX: the file name prefix of the `train` pair.
    public var prefix = "train"
    /// IDX: what uint16 images become (int32 or float32); nil refuses them.
    public var uint16Target: DType?
    /// Told about outputs other readers may refuse.
    public var warn: @Sendable (String) -> Void = { _ in }

    public init() {}
}

/// One container format, described once: its name, how a path is recognised as it, its reader,
/// its writer and where its manifest lives. `openContainer`, `convert` and the CLI are driven by
/// these descriptions, so a new format is one writer, one reader and one description.
public struct ContainerFormat: Sendable {
    /// `npz`, `npy`, `h5`, `idx`: the `--to` value and the manifest's `output.format`.
    public let name: String
    /// The output is a folder (`.npy` files, IDX pairs), not a file.
    public let outputIsFolder: Bool
    /// Output file name endings that name this format.
    public let extensions: [String]
    /// The format stores class names itself (IDX: only in the manifest).
    public let holdsClassNames: Bool
    /// The format holds one-hot label rows (IDX labels files are 1-D).
    public let holdsOnehotLabels: Bool
    /// The format keeps any label dtype it is given (IDX chooses by class count).
    public let keepsLabelDType: Bool
    /// Where the manifest of an output at this path goes.
    public let manifestPath: @Sendable (String) -> String
    let recognises: @Sendable (ContainerProbe) -> Bool
    let reader: @Sendable (ContainerProbe, _ labels: String?, _ prefix: String?) throws -> TensorContainer
    let writer: @Sendable (String, WriterSettings) -> DatasetWriter

    /// A writer of this format for `path`.
    public func makeWriter(path: String, settings: WriterSettings) -> DatasetWriter { writer(path, settings) }

    /// Every format imgconv reads and writes, in the order a path is tried against them.
    public static let all: [ContainerFormat] = [.npz, .h5, .idx, .npy]

    /// The format named `name` (`npz`, `npy`, `h5`/`hdf5`, `idx`).
    public static func named(_ name: String) -> ContainerFormat? {
        let key = name == "hdf5" ? "h5" : name
        return all.first { $0.name == key }
    }

    /// The format an output path names by its ending (`.npz`, `.h5`/`.hdf5`/`.he5`), or nil.
    public static func inferred(from path: String) -> ContainerFormat? {
        let name = path.split(separator: "/").last.map { $0.lowercased() } ?? ""
        return all.first { format in format.extensions.contains { name.hasSuffix($0) } }
    }

    public static let npz = ContainerFormat(
        name: "npz", outputIsFolder: false, extensions: [".npz"], holdsClassNames: true, holdsOnehotLabels: true,
        keepsLabelDType: true, manifestPath: { $0 + ".manifest.json" },
        recognises: { !$0.isFolder && $0.head.starts(with: [0x50, 0x4B]) },
        reader: { probe, _, _ in try NPZReader(path: probe.path) },
        writer: { path, s in
            let w = NPZWriter(path: path, compress: s.compress, level: Int32(s.level ?? 6))
            w.threads = s.threads
            return w
        })

    public static let h5 = ContainerFormat(
        name: "h5", outputIsFolder: false, extensions: [".h5", ".hdf5", ".he5"], holdsClassNames: true, holdsOnehotLabels: true,
        keepsLabelDType: true, manifestPath: { $0 + ".manifest.json" },
        recognises: { !$0.isFolder && HDF5Reader.hasSignature($0.path) },
        reader: { probe, _, _ in try HDF5Reader(path: probe.path) },
        writer: { path, s in
            let w = HDF5Writer(path: path, compress: s.compress, level: s.level ?? 4)
            w.threads = s.threads
            return w
        })

    public static let idx = ContainerFormat(
        name: "idx", outputIsFolder: true, extensions: [], holdsClassNames: false, holdsOnehotLabels: false,
        keepsLabelDType: false, manifestPath: { $0 + "/manifest.json" },
        recognises: { probe in
            if probe.isFolder { return probe.entries.contains { $0.contains("images") && $0.contains("idx") } }
            // IDX starts with two zero bytes (the header check then says which field is wrong), or is gzip.
            return probe.head.starts(with: [0x1F, 0x8B]) || probe.head.starts(with: [0, 0])
        },
        reader: { probe, labels, prefix in
            guard probe.isFolder else { return try IDXReader(images: probe.path, labels: labels) }
            if prefix == nil, let split = try IDXSplitReader(folder: probe.path, entries: probe.entries) { return split }
            guard let images = try IDXReader.imagesFile(in: probe.path, entries: probe.entries, prefix: prefix) else {
                throw ImgConvError(.notFound, path: probe.path, "holds no IDX images file starting with '\(prefix ?? "")-images'")
            }
            return try IDXReader(images: probe.path + "/" + images, labels: labels)
        },
        writer: { path, s in
            let w = IDXWriter(directory: path, prefix: s.prefix, gzip: s.gzip, level: Int32(s.level ?? 6))
            w.uint16Target = s.uint16Target
            w.warn = s.warn
            return w
        })

    public static let npy = ContainerFormat(
        name: "npy", outputIsFolder: true, extensions: [], holdsClassNames: true, holdsOnehotLabels: true,
        keepsLabelDType: true, manifestPath: { $0 + "/manifest.json" },
        recognises: { probe in
            probe.isFolder ? probe.entries.contains { $0.hasSuffix(".npy") } : probe.head.starts(with: NPYHeader.magic)
        },
        reader: { probe, _, _ in
            probe.isFolder ? try NPYDirectoryReader(directory: probe.path) as TensorContainer : try NPYFileReader(path: probe.path)
        },
        writer: { path, _ in NPYDirectoryWriter(directory: path) })
}

/// Opens any container imgconv reads, recognised by its first bytes or its folder's names (never
/// its extension), with the first format of `ContainerFormat.all` that recognises it.
/// - Parameters:
///   - labels: the IDX labels file, when its name does not follow MNIST's naming.
///   - prefix: picks one IDX pair in a folder of several.
/// - Throws: `.notFound` when the path does not exist, `.unsupported` when it is none of these,
///   `.corruptInput` for a malformed header.
public func openContainer(_ path: String, labels: String? = nil, prefix: String? = nil) throws -> TensorContainer {
    var st = stat()
    guard stat(path, &st) == 0 else {
        throw ImgConvError(.notFound, path: path, "does not exist")
    }
    let isFolder = (st.st_mode & S_IFMT) == S_IFDIR
    let probe = ContainerProbe(path: path, isFolder: isFolder, entries: isFolder ? listFolder(path) : [],
                               head: isFolder ? [] : try readFilePrefix(path, count: 8).0)
    if let format = ContainerFormat.all.first(where: { $0.recognises(probe) }) {
        return try format.reader(probe, labels, prefix)
    }
    if isFolder {
        throw ImgConvError(.unsupported, path: path, "folder holds no .npy files and no IDX images file")
    }
    let head = probe.head
    let shown = head.prefix(4).map { cFormat("%02x", $0) }.joined(separator: " ")
    throw ImgConvError(.unsupported, path: path,
                       "not an .npz, .npy, .h5 or IDX file (starts with \(head.isEmpty ? "nothing: the file is empty" : shown))")
}
