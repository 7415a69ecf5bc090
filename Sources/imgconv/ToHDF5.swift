import ArgumentParser
import ImgConv
import ImgConvCore
import ImgConvFormats

struct ToHDF5: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "to-hdf5",
        abstract: "Write /trainXs, /trainYs and the class names into one HDF5 file (h5py opens it).",
        discussion: """
            Datasets are chunked along N and extendible; class names are the root attribute 'classNames' \
            (variable-length UTF-8, str in h5py); the manifest is the root attribute 'imgconv_manifest' and \
            <out>.manifest.json.
            """,
        aliases: ["to-h5"])

    @OptionGroup var common: ConversionOptionGroup

    @Flag(help: "Compress the datasets: shuffle + gzip (as h5py's compression='gzip', shuffle=True).")
    var compress = false

    @Option(help: "gzip level for --compress, 0-9.")
    var level = 4

    func validate() throws {
        try common.validatePaths(outputs: 1)
        guard (0...9).contains(level) else { throw ValidationError("--level must be 0-9 (got \(level))") }
    }

    func run() throws {
        try IMGConvCommand.run {
            var settings = WriterSettings()
            settings.compress = compress
            settings.level = level
            try convert(common, format: .h5, settings: settings)
        }
    }
}
