#if canImport(Glibc)
import Glibc
#endif
import ImgConvCore
import ImgConvFormats

/// How a read command finds the labeled pairs of a container.
public struct DatasetReadOptions: Sendable {
    /// IDX: the labels file, when MNIST's naming does not find it.
    public var labelsFile: String?
    /// IDX: in a folder of several pairs, the one whose files start with this prefix.
    public var prefix: String?
    /// Another pair of array names than imgconv's (`trainXs`/`trainYs`) or Keras's
    /// (`x_train`/`y_train`): the images, and their labels. Both or neither.
    public var xs: String?
    public var ys: String?
    /// `nhwc` or `nchw` for 4-D images; nil takes `nchw` when the manifest says so.
    public var layout: String?

    public init() {}
}

/// How labels are stored: class indices (N,) (or a Keras-style column (N, 1)), or one-hot rows
/// (N, classes) of 0 and 1.
public enum LabelForm: String, Sendable, Codable {
    case index, onehot
}

/// One images/labels pair of a container: a split.
public struct LabeledSplit: Sendable {
    /// `train`, `val`, `test`, or the prefix of another pair.
    public let name: String
    /// The tensors' names in the container (`valXs`, `x_test`, ...).
    public let imagesName: String
    public let labelsName: String
    public let imagesHeader: NPYHeader
    public let labelsHeader: NPYHeader
    public let labelForm: LabelForm
    /// The labels' element type.
    public let labelDType: DType

    /// Images (= labels) in the split.
    public var count: Int { imagesHeader.shape.first ?? 0 }
    /// The names imgconv writes this split under (`valXs`/`valYs`).
    public var outputNames: TensorNames { TensorNames(prefix: name) }
}

/// The shape of the images of a split, whatever the layout.
public struct ImageGeometry: Sendable, Equatable {
    public var count: Int
    public var height: Int
    public var width: Int
    public var channels: Int
    public var dtype: DType
    /// Channels first, (N, C, H, W).
    public var nchw: Bool
    /// (N, H, W): one channel without its axis (IDX).
    public var channelAxisMissing: Bool

    public var bytesPerImage: Int { height * width * channels * dtype.byteSize }
}

/// The one way every read command (`convert`, `export`, `inspect`, `preview`, `verify`) opens a
/// labeled dataset: any container imgconv reads (`.npz`, `.npy` folder, `.h5`, IDX pair or folder
/// of pairs, plain or `.gz`), with every split pair it holds, its class names, its label form,
/// its layout and its manifest.
///
/// Pairs are found by name: `<split>Xs`/`<split>Ys` (imgconv's `trainXs`, `valXs`, `testXs`; IDX
/// `train-`, `val-`, `t10k-` files read as these), Keras's `x_<split>`/`y_<split>`, or the two names
/// given (`--xs`, `--ys`). Splits come in the order train, val, test, then others by name.
///
/// Class names: the container's, else the manifest's, else `"0"`... up to the largest label (for
/// one-hot labels, one per column).
public final class LabeledDataset {
    public let path: String
    public let container: TensorContainer
    /// The manifest beside the container (or, for HDF5 without a sidecar, inside it).
    public let manifest: Manifest?
    /// Where the manifest was found: its path, or the HDF5 attribute.
    public let manifestLocation: String?
    /// The bytes of the manifest file beside the container, when there is one.
    public let manifestFileBytes: [UInt8]?
    public let splits: [LabeledSplit]
    /// Tensors that belong to no pair and are not the class names.
    public let otherTensors: [String]
    public let classNames: [String]
    /// `container`, `manifest` or `none` (made from the labels).
    public let classNamesSource: String
    /// The label form of the dataset (every split has the same).
    public let labelForm: LabelForm
    /// 4-D images are (N, C, H, W).
    public let nchw: Bool

    /// - Throws: `ImgConvError`: `.notFound` for a missing path, `.unsupported` for a file that
    ///   holds no tensors imgconv reads, `.corruptInput` for a malformed container, a pair whose
    ///   labels do not match its images, or a manifest that does not parse; `.invalidArgument`
    ///   when `--xs`/`--ys` name tensors the container does not hold.
    public init(path: String, options: DatasetReadOptions = DatasetReadOptions()) throws {
        self.path = path
        do {
            // The container's files and its manifest are opened under the folder's shared lock:
            // a run committing a new pair there waits, so both are from one run.
            let (opened, loaded) = try withFolderLock(Self.commitFolder(path), shared: true) {
                let container = try openContainer(path, labels: options.labelsFile, prefix: options.prefix)
                return (container, try Self.loadManifest(container))
            }
            container = opened
            (manifest, manifestLocation, manifestFileBytes) = loaded
            let names = container.tensorNames
            let pairs = try Self.pairs(in: names, options: options, path: path, openIfPresent: { try opened.open($0) })
            let manifestSaysOnehot = manifest?.options.labels == "onehot"
            var found: [LabeledSplit] = []
            for pair in pairs {
                found.append(try Self.split(pair, container: container, onehot: manifestSaysOnehot))
            }
            splits = found
            let used = Set(found.flatMap { [$0.imagesName, $0.labelsName] })
            otherTensors = names.filter { !used.contains($0) && $0 != "classNames" }
            let forms = Set(found.map(\.labelForm))
            guard forms.count <= 1 else {
                throw ImgConvError(.corruptInput, path: path, "some splits have index labels and others one-hot labels")
            }
            labelForm = forms.first ?? .index
            if let layout = options.layout {
                guard layout == "nhwc" || layout == "nchw" else {
                    throw ImgConvError(.invalidArgument, "--layout must be nhwc or nchw, not '\(layout)'")
                }
                nchw = layout == "nchw"
            } else {
                nchw = manifest?.options.layout == "nchw"
            }
            if let stored = try container.classNames() {
                (classNames, classNamesSource) = (stored, "container")
            } else if let manifest {
                (classNames, classNamesSource) = (manifest.classes.map(\.name), "manifest")
            } else {
                (classNames, classNamesSource) = (try Self.namesFromLabels(found, container: container, path: path), "none")
            }
            if labelForm == .onehot, let width = found.first?.labelsHeader.shape.last, width != classNames.count {
                throw ImgConvError(.corruptInput, path: path,
                                   "\(container.storageName(found[0].labelsName)): one-hot rows of \(width) columns for \(classNames.count) classes")
            }
        } catch let e as ImgConvError where e.path == nil {
            throw e.at(path)
        }
    }

    /// The container's format name (`npz`, `npy`, `h5`, `idx`).
    public var formatName: String { container.formatName }

    /// Images over all splits.
    public var imageCount: Int { splits.reduce(0) { $0 + $1.count } }

    /// The file, member or dataset a tensor is stored under (for messages).
    public func storageName(_ tensor: String) -> String { container.storageName(tensor) }

    /// A split by its name (`val`) or its images tensor's name (`valXs`, `x_test`).
    public func split(named name: String) -> LabeledSplit? {
        splits.first { $0.name == name || $0.imagesName == name }
    }

    /// Refuses a container that holds no pair of images and labels.
    public func requireSplits() throws {
        guard splits.isEmpty else { return }
        let held = container.tensorNames.prefix(8).map { "'\($0)'" }.joined(separator: ", ")
        throw ImgConvError(.unsupported, path: path,
                           "holds no pair of images and labels (trainXs/trainYs, x_train/y_train; it holds \(held.isEmpty ? "no tensors" : held)): name one with --xs NAME --ys NAME")
    }

    /// The split's images: their header and a stream of exactly their bytes.
    public func openImages(_ split: LabeledSplit) throws -> (NPYHeader, ByteStream) {
        try container.open(split.imagesName)
    }

    /// The split's images as (count, height, width, channels).
    /// - Throws: `.unsupported` for a shape that is not (N, H, W, C), (N, C, H, W) or (N, H, W),
    ///   or an element type that is not a number.
    public func geometry(_ split: LabeledSplit) throws -> ImageGeometry {
        let header = split.imagesHeader
        let label = storageName(split.imagesName)
        guard let dtype = DType(npyDescr: header.descr) else {
            throw ImgConvError(.unsupported, path: path, "\(label): dtype '\(header.descr)' is not an image type")
        }
        let s = header.shape
        switch s.count {
        case 4 where nchw:
            return ImageGeometry(count: s[0], height: s[2], width: s[3], channels: s[1], dtype: dtype, nchw: true, channelAxisMissing: false)
        case 4:
            return ImageGeometry(count: s[0], height: s[1], width: s[2], channels: s[3], dtype: dtype, nchw: false, channelAxisMissing: false)
        case 3:
            return ImageGeometry(count: s[0], height: s[1], width: s[2], channels: 1, dtype: dtype, nchw: false, channelAxisMissing: true)
        default:
            throw ImgConvError(.unsupported, path: path, "\(label): shape \(s) is not (N, H, W, C), (N, C, H, W) or (N, H, W)")
        }
    }

    /// The split's labels as class indices (one-hot rows become the index of their 1), each
    /// checked against the class count.
    /// - Throws: `.corruptInput` naming the tensor and the row for a one-hot row that is not a
    ///   single 1 among 0s, or a label outside [0, classes).
    public func labels(_ split: LabeledSplit) throws -> [Int64] {
        let values = try rawLabels(split)
        if let bad = values.firstIndex(where: { $0 < 0 || $0 >= classNames.count }) {
            throw ImgConvError(.corruptInput, path: path,
                               "\(storageName(split.labelsName)): label \(values[bad]) of image \(bad) is outside [0, \(classNames.count))")
        }
        return values
    }

    /// The split's labels as class indices, unchecked against the class count (what `inspect`
    /// counts); one-hot rows are checked.
    public func rawLabels(_ split: LabeledSplit) throws -> [Int64] {
        try Self.readLabels(split, container: container, path: path)
    }

    // MARK: - Finding the parts

    /// The manifest beside a container; else, for HDF5, the one stored inside it; else nil.
    /// - Throws: `.corruptInput` when one exists but does not parse.
    static func loadManifest(_ container: TensorContainer) throws -> (Manifest?, String?, [UInt8]?) {
        var st = stat()
        if stat(container.manifestPath, &st) == 0 {
            let bytes = try readManifestFile(container.manifestPath, for: container)
            return (try Manifest.decode(bytes, path: container.manifestPath), container.manifestPath, bytes)
        }
        if let embedded = try container.embeddedManifest() {
            return (try Manifest.decode(embedded, path: container.path), "attribute '\(HDF5Writer.manifestAttribute)'", nil)
        }
        return (nil, nil, nil)
    }

    /// The folder a run commits a container of `path` into (and locks while it does): the
    /// container's own folder for a folder of tensors, else the folder holding the file.
    static func commitFolder(_ path: String) -> String {
        isFolder(path) ? path : parentFolder(path)
    }

    /// The bytes of a container's manifest file, read only when plausible: it begins as a JSON
    /// object does, and is at most 16 MiB plus 64 KiB for each row of the container's tensors
    /// (a file's record takes far less), so a huge stray file is refused unread.
    /// - Throws: `.corruptInput` for a file that is not a JSON object, `.limitExceeded` for one
    ///   too large, as `InputFile` when it cannot be read.
    static func readManifestFile(_ path: String, for container: TensorContainer) throws -> [UInt8] {
        let input = try InputFile(path)
        let head = try input.prefix(4096)
        guard head.first(where: { ![0x20, 0x09, 0x0A, 0x0D].contains($0) }) == UInt8(ascii: "{") else {
            throw ImgConvError(.corruptInput, path: path, "manifest is not a JSON object")
        }
        var rows = 0
        for name in container.tensorNames {
            rows += min(1 << 30, (try? container.open(name).0.shape.first) ?? 0)
        }
        let bound = (16 << 20) + rows * (64 << 10)
        return try input.readAll(after: head, maxBytes: bound,
                                 why: "more than the manifest of \(rows) tensor rows can be (\(bound) bytes): not read")
    }

    /// A pair of tensor names and the split it is.
    struct Pair {
        var split: String
        var images: String
        var labels: String
    }

    /// Keras's split words (`x_valid` is a val split).
    private static func kerasSplit(_ word: String) -> String {
        switch word {
        case "valid", "validation": return "val"
        default: return word
        }
    }

    /// The pairs among a container's tensor names, in split order.
    static func pairs(in names: [String], options: DatasetReadOptions, path: String,
                      openIfPresent: ((String) throws -> Any)? = nil) throws -> [Pair] {
        let held = Set(names)
        if options.xs != nil || options.ys != nil {
            guard let xs = options.xs, let ys = options.ys else {
                throw ImgConvError(.invalidArgument, "--xs and --ys go together: name the images and the labels")
            }
            for name in [xs, ys] where !held.contains(name) {
                let list = names.prefix(10).map { "'\($0)'" }.joined(separator: ", ")
                throw ImgConvError(.invalidArgument, path: path, "holds no tensor '\(name)' (it holds \(list.isEmpty ? "none" : list))")
            }
            var split = "train"
            if xs.hasSuffix("Xs"), ys == xs.dropLast(2) + "Ys", xs.count > 2 {
                split = String(xs.dropLast(2))
            } else if xs.hasPrefix("x_"), ys == "y_" + xs.dropFirst(2), xs.count > 2 {
                split = kerasSplit(String(xs.dropFirst(2)))
            }
            return [Pair(split: split, images: xs, labels: ys)]
        }
        var pairs: [Pair] = []
        for name in names {
            if name.hasSuffix("Xs"), name.count > 2 {
                let prefix = String(name.dropLast(2))
                guard held.contains(prefix + "Ys") else {
                    _ = try openIfPresent?(prefix + "Ys")   // the container's own reason (IDX: no labels file found)
                    throw ImgConvError(.corruptInput, path: path, "holds '\(name)' but not its labels '\(prefix)Ys'")
                }
                pairs.append(Pair(split: prefix, images: name, labels: prefix + "Ys"))
            } else if name.hasPrefix("x_"), name.count > 2 {
                let word = String(name.dropFirst(2))
                guard held.contains("y_" + word) else { continue }   // x_ alone is not a pair
                pairs.append(Pair(split: kerasSplit(word), images: name, labels: "y_" + word))
            }
        }
        for (name, alone) in names.map({ ($0, $0.hasSuffix("Ys") ? String($0.dropLast(2)) + "Xs" : "") })
        where !alone.isEmpty && !held.contains(alone) && alone.count > 2 {
            throw ImgConvError(.corruptInput, path: path, "holds '\(name)' but not its images '\(alone)'")
        }
        var seen = Set<String>()
        for p in pairs where !seen.insert(p.split).inserted {
            throw ImgConvError(.corruptInput, path: path, "holds two pairs for the split '\(p.split)'")
        }
        let order = ["train": 0, "val": 1, "test": 2]
        return pairs.sorted { (order[$0.split] ?? 3, $0.split) < (order[$1.split] ?? 3, $1.split) }
    }

    /// Opens both headers of a pair and checks they agree.
    private static func split(_ pair: Pair, container: TensorContainer, onehot manifestSaysOnehot: Bool) throws -> LabeledSplit {
        let path = container.path
        let (images, _) = try container.open(pair.images)
        let (labels, _) = try container.open(pair.labels)
        let labelsLabel = container.storageName(pair.labels)
        guard let count = images.shape.first else {
            throw ImgConvError(.corruptInput, path: path, "\(container.storageName(pair.images)) is a scalar, not a tensor of images")
        }
        guard let dtype = DType(npyDescr: labels.descr) else {
            throw ImgConvError(.unsupported, path: path, "\(labelsLabel): labels of dtype '\(labels.descr)' are not numbers")
        }
        let form: LabelForm
        switch labels.shape.count {
        case 1 where !dtype.isFloatingPoint: form = .index
        case 2 where labels.shape[1] == 1 && !dtype.isFloatingPoint && !manifestSaysOnehot: form = .index   // Keras's (N, 1) column
        case 2: form = .onehot
        default:
            throw ImgConvError(.unsupported, path: path,
                               "\(labelsLabel): labels must be integers (N,) or one-hot rows (N, classes), found \(dtype.rawValue) \(labels.shape)")
        }
        guard labels.shape[0] == count else {
            throw ImgConvError(.corruptInput, path: path,
                               "\(labels.shape[0]) labels (\(labelsLabel)) for \(count) images (\(container.storageName(pair.images)))")
        }
        return LabeledSplit(name: pair.split, imagesName: pair.images, labelsName: pair.labels, imagesHeader: images,
                            labelsHeader: labels, labelForm: form, labelDType: dtype)
    }

    /// "0", "1", ... up to the largest label of any split, or one per one-hot column.
    private static func namesFromLabels(_ splits: [LabeledSplit], container: TensorContainer, path: String) throws -> [String] {
        var count = 0
        for split in splits {
            if split.labelForm == .onehot {
                count = max(count, split.labelsHeader.shape[1])
                continue
            }
            let largest = try readLabels(split, container: container, path: path).max() ?? -1
            guard largest < 1 << 20 else {
                throw ImgConvError(.limitExceeded, path: path,
                                   "\(container.storageName(split.labelsName)): label \(largest) without class names (over 1,048,575)")
            }
            count = max(count, Int(largest + 1))
        }
        return (0..<count).map(String.init)
    }

    /// Reads a split's labels as indices; one-hot rows must hold a single 1 among 0s.
    static func readLabels(_ split: LabeledSplit, container: TensorContainer, path: String) throws -> [Int64] {
        let (_, stream) = try container.open(split.labelsName)
        let label = container.storageName(split.labelsName)
        let dtype = split.labelDType
        guard split.labelForm == .onehot else {
            return try readIntegers(stream, dtype: dtype, count: split.count, path: path, label: label)
        }
        let width = split.labelsHeader.shape[1]
        let rowBytes = width * dtype.byteSize
        var out: [Int64] = []
        out.reserveCapacity(min(split.count, 1 << 20))   // grows with the rows read, not the header's N
        var scratch: [UInt8] = []
        for row in 0..<split.count {
            try stream.next(rowBytes, scratch: &scratch) { raw in
                guard raw.count == rowBytes else {
                    throw ImgConvError(.corruptInput, path: path, "\(label): data ends in row \(row) of \(split.count)")
                }
                var hot = -1
                for k in 0..<width {
                    let v = dtype.value(in: raw, at: k * dtype.byteSize)
                    if v == 0 { continue }
                    guard v == 1 else {
                        throw ImgConvError(.corruptInput, path: path, "\(label): one-hot row \(row) holds the value \(v) (only 0 and 1 are allowed)")
                    }
                    guard hot < 0 else {
                        throw ImgConvError(.corruptInput, path: path, "\(label): one-hot row \(row) holds more than one 1 (columns \(hot) and \(k))")
                    }
                    hot = k
                }
                guard hot >= 0 else {
                    throw ImgConvError(.corruptInput, path: path, "\(label): one-hot row \(row) holds no 1")
                }
                out.append(Int64(hot))
            }
        }
        return out
    }
}
