import ArgumentParser

/// Catches an option the command does not have before the argument parser sees it (the parser
/// would take its value for a path and say only "expected ROOT and OUT"), and names the option
/// imgconv has for it: the names Keras, torchvision and PyTorch users type, or the closest
/// spelling of a real option.
enum UnknownOptions {
    /// Other tools' names and imgconv's.
    static let aliases: [String: String] = [
        "--image-size": "--size", "--img-size": "--size", "--target-size": "--size", "--resize": "--size",
        "--validation-split": "--split", "--val-split": "--split", "--test-split": "--split", "--subset": "--split",
        "--color-mode": "--color", "--channels": "--color", "--label-mode": "--labels",
        "--interpolation": "--filter", "--resample": "--filter", "--crop-to-aspect-ratio": "--fit",
        "--class-names": "--classes", "--num-workers": "--jobs", "--workers": "--jobs", "--threads": "--jobs",
        "--random-seed": "--seed", "--normalize": "--scale", "--follow-links": "--follow-symlinks",
    ]

    /// The one-line usage message for the first option of `arguments` (argv without the program)
    /// that the subcommand does not have, or nil when there is none.
    static func check(_ arguments: [String]) -> String? {
        guard let name = arguments.first, !name.hasPrefix("-"),
              let command = IMGConvCommand.configuration.subcommands.first(where: {
                  $0._commandName == name || $0.configuration.aliases.contains(name)
              }) else { return nil }
        let known = knownOptions(of: command)
        for token in arguments.dropFirst() {
            if token == "--" { break }
            guard token.hasPrefix("--"), token.count > 2 else { continue }
            let option = String(token.split(separator: "=", maxSplits: 1)[0])
            if known.contains(option) { continue }
            var text = "unknown option '\(option)'"
            if let suggestion = suggestion(for: option, known: known) { text += "; did you mean '\(suggestion)'?" }
            return text + " (see 'imgconv \(name) --help')"
        }
        return nil
    }

    /// Every long option the command's help names (its own, its option groups', --help).
    static func knownOptions(of command: ParsableCommand.Type) -> Set<String> {
        let help = IMGConvCommand.helpMessage(for: command, columns: 10_000)
        var names: Set<String> = ["--help", "--version"]
        let words = help.split(whereSeparator: { !($0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-")) })
        for word in words where word.hasPrefix("--") && word.dropFirst(2).first?.isLetter == true {
            names.insert(String(word))
        }
        return names
    }

    /// imgconv's name for another tool's option, else the one known option it begins, else the
    /// known option within two edits.
    static func suggestion(for option: String, known: Set<String>) -> String? {
        let lowered = option.lowercased().replacing("_", with: "-")
        if let alias = aliases[lowered], known.contains(alias) { return alias }
        if known.contains(lowered) { return lowered }
        let longer = known.filter { $0.hasPrefix(lowered) }
        if longer.count == 1 { return longer.first }
        let ranked = known.map { ($0, editDistance(lowered, $0)) }.filter { $0.1 <= 2 }.sorted { ($0.1, $0.0) < ($1.1, $1.0) }
        return ranked.first?.0
    }

    /// Levenshtein distance between two short strings.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var row = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var previous = row[0]
            row[0] = i
            for j in stride(from: 1, through: b.count, by: 1) {
                let current = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] == b[j - 1] ? 0 : 1))
                previous = current
            }
        }
        return a.isEmpty ? b.count : row[b.count]
    }
}

/// "1 class", "2 classes": a count with its noun in the right number.
func counted(_ n: Int, _ singular: String, _ plural: String? = nil) -> String {
    "\(n) " + (n == 1 ? singular : plural ?? singular + "s")
}
