import ArgumentParser
import ImgConv
import ImgConvCore

struct Preview: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "preview",
        abstract: "Draw a contact sheet PNG: a row of sample images per class, labelled '<index>: <name>'.",
        discussion: """
            Each row holds the first --per-class images of one class in tensor order, so a glance shows whether \
            labels and pixels line up; every split gets its own section (--tensor shows one). Images are scaled \
            with nearest neighbour so their larger side is --cell (small ones enlarged, large ones reduced); \
            uint16 shows as value / 257, float and signed integer images from the tensor's min/max (or [0, 1] for \
            floats, [0, 255] for integers, when every value lies within it); gray is replicated to RGB and alpha \
            composited on a checkerboard. Images stream through once; only the chosen ones are kept. Class names \
            show in ASCII (other characters as '?'), cut at 40 characters.
            """)

    @Argument(help: "An .npz or .h5 file, a folder of .npy files, or an IDX images file (or its folder).")
    var input: String

    @Option(name: .shortAndLong, help: "The PNG to write.")
    var output: String

    @Option(help: "Images per class.")
    var perClass: Int = 8

    @Option(help: "Cell side in pixels: images are scaled (nearest) so their larger side is this.")
    var cell: Int = 96

    @Option(help: "One split to show, by its images tensor (valXs) or name (val); default: every split, one section each.")
    var tensor: String?

    @Option(help: "Only these classes, in this order: names or indices, comma-separated.")
    var classes: String?

    @OptionGroup var read: ReadOptionGroup

    @Option(help: "In a folder of several IDX pairs, the one whose files start with this prefix.")
    var prefix: String?

    @Flag(name: .shortAndLong, help: "Print nothing but errors.")
    var quiet = false

    func run() throws {
        try IMGConvCommand.run {
            var options = PreviewOptions()
            options.perClass = perClass
            options.cellSize = cell
            options.tensor = tensor
            options.classes = classes.map { $0.split(separator: ",", omittingEmptySubsequences: true).map(String.init) }
            options.read = read.options(prefix: prefix)
            var previewer = Previewer(options: options)
            previewer.warn = { Console.warning($0) }
            let document = try previewer.preview(input: input, to: output)
            if !quiet {
                let parts = document.sections.map { sheet in
                    let l = sheet.layout
                    let shown = sheet.imageIndices.reduce(0) { $0 + $1.count }
                    return "\(sheet.split): \(counted(l.rows, "class", "classes")), \(counted(shown, "image")) (\(sheet.imageHeight)x\(sheet.imageWidth)x\(sheet.channels) "
                        + "\(sheet.dtype.rawValue), cells \(l.cellHeight)x\(l.cellWidth), values \(sheet.displayMapping))"
                }
                Console.out("imgconv: wrote '\(output)': \(document.width)x\(document.height) pixels; " + parts.joined(separator: "; "))
            }
        }
    }
}
