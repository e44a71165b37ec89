/**
 * A command's description is written as prose broken near 100 columns, to read well in the source.
 * commander wraps each of those lines again at the terminal's width, which left a short line after
 * every long one on an 80-column terminal. This joins the lines of each paragraph, so that commander
 * wraps the paragraph once. A blank line, an indented line (an example), a list item, and the line
 * after one ending in ":" keep their breaks.
 */
export function joinProseLines(text: string): string {
  const lines: string[] = [];
  for (const line of text.split('\n')) {
    const previous = lines.at(-1);
    if (previous !== undefined && isProse(previous) && isProse(line) && !previous.endsWith(':')) lines[lines.length - 1] = `${previous} ${line}`;
    else lines.push(line);
  }
  return lines.join('\n');
}

function isProse(line: string): boolean {
  return line.trim() !== '' && !/^\s/.test(line) && !/^[-*]\s/.test(line);
}
