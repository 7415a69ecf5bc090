import ArgumentParser
import ImgConv
import ImgConvCore

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a dataset's images back to class folders: OUTDIR/<class>/<index>.png (.tiff for floats); several splits go to OUTDIR/<split>/<class>/.",
        discussion: """
            uint8 images become 8-bit PNGs, uint16 16-bit; float32 and float16 images become 32-bit \
            floating-point TIFFs (float16 widened exactly), float64, int32 and uint32 images TIFFs of their type. <index> is the image's position in the tensor, \
            zero-padded, and OUTDIR/classes.txt lists the class folders in label order, so \
            `imgconv to-npz OUTDIR x.npz --classes-file OUTDIR/classes.txt` (with --color keep for 2 or 4 \
            channels) gives back the images and labels in class order, bit for bit. Class names become single \
            folder names ('/', '\\', NUL, control characters -> '_', '..' -> '__', no leading '.'): nothing is \
            written outside OUTDIR.
            """)

    @Argument(help: "An .npz or .h5 file, a folder of .npy files, or an IDX images file.")
    var input: String

    @Argument(help: "Output folder (created if missing).")
    var output: String

    @OptionGroup var read: ReadOptionGroup

    @Option(help: "In a folder of several IDX pairs, the one whose files start with this prefix.")
    var prefix: String?

    @Flag(name: .shortAndLong, help: "Print nothing but errors.")
    var quiet = false

    func run() throws {
        try IMGConvCommand.run {
            let s = try Exporter(read: read.options(prefix: prefix)).export(input: input, to: output)
            if !quiet {
                let files = s.fileFormat == "tiff" ? "\(s.bitDepth)-bit \(s.sampleKind) TIFFs" : "\(s.bitDepth)-bit PNGs"
                let splits = s.splits.count > 1 ? " in \(s.splits.count) split folders (\(s.splits.joined(separator: ", ")))," : ""
                Console.out("imgconv: wrote '\(output)': \(s.images) \(files)\(splits) in \(counted(s.classes, "class folder"))")
            }
        }
    }
}
