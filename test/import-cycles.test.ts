import t from 'tap'
import { readdir, readFile } from 'node:fs/promises'
import { dirname, join, relative, resolve } from 'node:path'

/*
 * src/ has no module cycles, type-only imports included (docs/architecture.md): a newcomer reads
 * the tree from the leaves up, and a cycle makes the order of module evaluation matter.
 */

const SRC = resolve('src')

async function sourceFiles (directory: string): Promise<string[]> {
  const entries = await readdir(directory, { withFileTypes: true })
  const nested = await Promise.all(entries.map(async (entry) => {
    const path = join(directory, entry.name)
    if (entry.isDirectory()) return await sourceFiles(path)
    return entry.name.endsWith('.ts') ? [path] : []
  }))
  return nested.flat()
}

/** Relative imports and re-exports of a module, `import type` and `export type` included. */
function localImports (file: string, text: string): string[] {
  const specifiers = [...text.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+'(\.{1,2}\/[^']+)'/gms)].map((match) => match[1] as string)
  return specifiers.map((specifier) => resolve(dirname(file), specifier.replace(/\.js$/, '.ts')))
}

/** Every cycle's modules, found by depth-first search (each cycle reported once per entry point). */
function findCycles (graph: Map<string, string[]>): string[][] {
  const cycles: string[][] = []
  const state = new Map<string, 'visiting' | 'done'>()
  const stack: string[] = []
  const visit = (node: string): void => {
    state.set(node, 'visiting')
    stack.push(node)
    for (const next of graph.get(node) ?? []) {
      if (state.get(next) === 'visiting') cycles.push([...stack.slice(stack.indexOf(next)), next])
      else if (state.get(next) === undefined) visit(next)
    }
    stack.pop()
    state.set(node, 'done')
  }
  for (const node of graph.keys()) if (state.get(node) === undefined) visit(node)
  return cycles
}

t.test('the cycle finder finds a cycle through type-only imports', async (t) => {
  const a = resolve(SRC, 'a.ts')
  const b = resolve(SRC, 'b.ts')
  t.same(localImports(a, "import type { B } from './b.js'\n"), [b])
  t.same(localImports(a, "import {\n  x,\n  type Y\n} from '../src/b.js'\n"), [resolve(SRC, '../src/b.ts')])
  t.equal(findCycles(new Map([[a, [b]], [b, [a]]])).length, 1)
  t.equal(findCycles(new Map([[a, [b]], [b, []]])).length, 0)
})

t.test('src/ has no import cycles', async (t) => {
  const files = await sourceFiles(SRC)
  t.ok(files.length > 20, 'the source tree was read')
  const graph = new Map<string, string[]>()
  for (const file of files) graph.set(file, localImports(file, await readFile(file, 'utf8')))
  const cycles = findCycles(graph).map((cycle) => cycle.map((file) => relative(SRC, file)).join(' → '))
  t.same(cycles, [])
})
