import ArgumentParser
import ImgConv
import ImgConvCore

extension TensorFormat: RawValueArgument {}

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Copy a dataset between .npz, .npy folder, HDF5 and IDX: tensor bytes unchanged, class names and manifest carried over.",
        discussion: """
            IN is an .npz, an .h5, a folder of .npy files, or an IDX images file (plain or .gz; its labels file \
            is found by MNIST's naming, images -> labels and idx3 -> idx1, or given with --labels). The target \
            format comes from OUT's extension (.npz, .h5) or --to; for --to idx and --to npy, OUT is a folder. \
            Labels are int64 in npz/npy/h5 and the narrowest IDX type holding the class count in IDX. An IDX \
            source without a manifest gets the class names "0", "1", ... Every split pair is converted \
            (trainXs/trainYs, valXs/valYs, testXs/testYs; IDX train-, val-, t10k- files; Keras x_train/y_train...), \
            one-hot labels stay one-hot unless --labels index. A target that cannot hold the data \
            (IDX: uint16 without --dtype, int64, float16) is refused before anything is written.
            """)

    enum IDXDType: String, RawValueArgument {
        case int32, float32
    }

    @Argument(help: "Input: .npz, .h5, .npy folder, or IDX images file.")
    var input: String

    @Argument(help: "Output: .npz or .h5 file, or a folder for --to npy / --to idx.")
    var output: String

    @Option(help: "Target format: npz, npy, h5, idx (default: from OUT's extension).")
    var to: TensorFormat?

    @Option(help: "IDX output: file name prefix (<prefix>-images-idx3-ubyte ...).")
    var prefix = "train"

    @OptionGroup var read: ReadOptionGroup

    @Option(help: "Labels of the output: index or onehot (default: as the input's; IDX holds only index).")
    var labels: LabelForm?

    @Flag(help: "Compress: deflate .npz members, shuffle + gzip HDF5 datasets.")
    var compress = false

    @Option(help: "Compression level 0-9 (default 6 for npz and IDX .gz, 4 for HDF5).")
    var level: Int?

    @Flag(help: "IDX output: gzip both files (.gz).")
    var gzip = false

    @Option(help: "IDX output: store uint16 images as int32 or float32 (both exact); IDX has no uint16.")
    var dtype: IDXDType?

    @Flag(name: .shortAndLong, help: "Print nothing but errors.")
    var quiet = false

    func validate() throws {
        if let level, !(0...9).contains(level) { throw ValidationError("--level must be 0-9 (got \(level))") }
        guard !prefix.isEmpty, !prefix.contains("/") else {
            throw ValidationError("--prefix must be a non-empty file name part without '/' (got '\(prefix)')")
        }
        let target = to ?? TensorFormat.inferred(from: output)
        if gzip && target != .idx { throw ValidationError("--gzip applies to IDX output (--to idx)") }
        if dtype != nil && target != .idx { throw ValidationError("--dtype applies to IDX output (--to idx)") }
    }

    func run() throws {
        try IMGConvCommand.run {
            var options = FormatConversionOptions()
            options.format = to
            options.read = read.options()
            options.labelForm = labels
            options.writer.compress = compress
            options.writer.level = level
            options.writer.gzip = gzip
            options.writer.prefix = prefix
            options.writer.threads = ConversionOptions.defaultJobs
            options.writer.uint16Target = dtype.map { $0 == .int32 ? DType.int32 : DType.float32 }
            var converter = FormatConverter(options: options)
            converter.warn = { Console.warning($0) }
            let s = try converter.convert(input: input, output: output)
            if !quiet {
                let shape = s.shape.map(String.init).joined(separator: "x")
                let splits = s.splits.map { "\($0.name) \($0.count)" }.joined(separator: ", ")
                Console.out("imgconv: wrote '\(output)' (\(s.format.rawValue)) from \(s.sourceFormat) '\(input)': \(counted(s.images, "image")) (\(splits)), \(counted(s.classes, "class", "classes")), images \(shape) \(s.dtype), manifest \(s.carriedManifest ? "carried over" : "new")")
            }
        }
    }
}
