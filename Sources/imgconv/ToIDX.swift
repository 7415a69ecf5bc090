import ArgumentParser
import ImgConv
import ImgConvCore
import ImgConvFormats

struct ToIDX: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "to-idx",
        abstract: "Write an MNIST-style IDX pair (<prefix>-images-idx3-ubyte, <prefix>-labels-idx1-ubyte) into a folder.",
        discussion: """
            One channel gives (N, H, W) images (idx3); more give (N, H, W, C) (idx4), which torchvision's MNIST \
            reader does not take. IDX has no uint16: 16-bit images need --dtype float32 (exact) or --dtype uint8. \
            Labels are uint8 up to 256 classes, int16 (…-idx1-short) up to 32768, else int32 (…-idx1-int). \
            Class names are only in the manifest (<folder>/manifest.json).
            """)

    @OptionGroup var common: ConversionOptionGroup

    @Option(help: "File name prefix: <prefix>-images-idx3-ubyte, <prefix>-labels-idx1-ubyte.")
    var prefix = "train"

    @Flag(help: "gzip both files (adds .gz, as MNIST is distributed).")
    var gzip = false

    func validate() throws {
        try common.validatePaths(outputs: 1)
        guard !prefix.isEmpty, !prefix.contains("/"), !prefix.contains("\0") else {
            throw ValidationError("--prefix must be a non-empty file name part without '/' (got '\(prefix)')")
        }
        if common.labels == .onehot {
            throw ValidationError("IDX labels files hold class indices (N,): --labels onehot needs .npz, .npy or .h5")
        }
    }

    func run() throws {
        try IMGConvCommand.run {
            var settings = WriterSettings()
            settings.prefix = prefix
            settings.gzip = gzip
            settings.warn = { Console.warning($0) }
            try convert(common, format: .idx, settings: settings)
        }
    }
}
