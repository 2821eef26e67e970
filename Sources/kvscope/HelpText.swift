import Foundation

/// Help texts as written in the source, reflowed for ArgumentParser.
enum HelpText {
    /// Joins the lines of each paragraph of `text` (paragraphs are separated by blank lines), so
    /// ArgumentParser wraps the text to the terminal's width instead of keeping the source's line
    /// breaks on top of its own (which left ragged half-empty lines).
    static func flow(_ text: String) -> String {
        text.components(separatedBy: "\n\n")
            .map { paragraph in
                paragraph.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
                    .filter { !$0.isEmpty }.joined(separator: " ")
            }
            .joined(separator: "\n\n")
    }
}
