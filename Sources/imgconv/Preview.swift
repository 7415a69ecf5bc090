import ArgumentParser
import ImgConv
import ImgConvCore

struct Preview: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Draw a contact sheet PNG: a row of sample images per class, labelled '<index>: <name>'.",
        discussion: """
            Each row holds the first --per-class images of one class in tensor order, so a glance shows whether \
            labels and pixels line up. Images larger than --cell are scaled down (nearest neighbour, aspect kept); \
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

    @Option(help: "Largest cell side in pixels; larger images are scaled down.")
    var cell: Int = 96

    @Option(help: "The images tensor; its labels are the tensor named ...Ys.")
    var tensor: String = "trainXs"

    @Option(help: "Only these classes, in this order: names or indices, comma-separated.")
    var classes: String?

    @Option(help: "4-D image layout: nhwc or nchw (default: nchw when the manifest says so, else nhwc).")
    var layout: String?

    @Option(help: "The IDX labels file, when its name does not follow MNIST's.")
    var labels: String?

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
            options.layout = layout
            options.labels = labels
            options.prefix = prefix
            let sheet = try Previewer(options: options).preview(input: input, to: output)
            if !quiet {
                let l = sheet.layout
                let shown = sheet.imageIndices.reduce(0) { $0 + $1.count }
                Console.out("imgconv: wrote '\(output)': \(l.width)x\(l.height) pixels, \(l.rows) classes, \(shown) images "
                            + "(\(sheet.imageHeight)x\(sheet.imageWidth)x\(sheet.channels) \(sheet.dtype.rawValue), "
                            + "cells \(l.cellHeight)x\(l.cellWidth), values \(sheet.displayMapping))")
            }
        }
    }
}
