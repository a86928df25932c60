import t from 'tap'
import { existsSync } from 'node:fs'
import { readdir, readFile } from 'node:fs/promises'
import { dirname, join, normalize } from 'node:path'

/*
 * Every relative link in README.md and docs/*.md names a file of the repository, and an anchor into
 * a Markdown file names one of its headings. Absolute URLs are not fetched.
 */

const documents = ['README.md', ...(await readdir('docs')).filter((name) => name.endsWith('.md')).map((name) => join('docs', name))]

/** The lines of a Markdown file outside fenced code blocks (a link inside code is not a link). */
function proseLines (text: string): string[] {
  let fenced = false
  return text.split('\n').filter((line) => {
    if (line.startsWith('```')) {
      fenced = !fenced
      return false
    }
    return !fenced
  })
}

/** GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens; repeats get -1, -2. */
function headingAnchors (text: string): Set<string> {
  const anchors = new Set<string>()
  const seen = new Map<string, number>()
  for (const line of proseLines(text)) {
    const heading = /^#{1,6}\s+(.*)$/.exec(line)?.[1]
    if (heading === undefined) continue
    const slug = heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-')
    const count = seen.get(slug) ?? 0
    seen.set(slug, count + 1)
    anchors.add(count === 0 ? slug : `${slug}-${count}`)
  }
  return anchors
}

/** Relative link targets, split into path and anchor; inline code spans are skipped. */
function relativeLinks (text: string): Array<{ path: string, anchor: string | undefined }> {
  const links: Array<{ path: string, anchor: string | undefined }> = []
  for (const line of proseLines(text)) {
    for (const match of line.replace(/`[^`]*`/g, '').matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = match[1] as string
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue
      const [path = '', anchor] = target.split('#', 2)
      links.push({ path, anchor })
    }
  }
  return links
}

for (const document of documents) {
  t.test(`the relative links of ${document} resolve`, async (t) => {
    const links = relativeLinks(await readFile(document, 'utf8'))
    for (const { path, anchor } of links) {
      const target = path === '' ? document : normalize(join(dirname(document), path))
      const label = `${document} → ${path}${anchor === undefined ? '' : `#${anchor}`}`
      if (!existsSync(target)) {
        t.fail(`${label}: no file ${target}`)
        continue
      }
      if (anchor !== undefined && target.endsWith('.md')) {
        t.ok(headingAnchors(await readFile(target, 'utf8')).has(anchor), `${label}: a heading of ${target}`)
      } else {
        t.pass(label)
      }
    }
  })
}
