import { readFileSync, writeFileSync } from 'node:fs'
import { pathToFileURL } from 'node:url'
import { z } from 'zod'
import { gatewayConfigSchema } from '../src/config/config-schema.js'

/**
 * Writes config/gateway.schema.json (the editor's JSON Schema) and the reference table of
 * docs/configuration.md from the one definition in src/config/config-schema.ts.
 * `npm run config:schema`; test/config-schema-files.test.ts fails when either is stale.
 */

export const SCHEMA_FILE = 'config/gateway.schema.json'
export const DOC_FILE = 'docs/configuration.md'
export const REFERENCE_BEGIN = '<!-- BEGIN GENERATED REFERENCE: npm run config:schema -->'
export const REFERENCE_END = '<!-- END GENERATED REFERENCE -->'

/** The raw YAML text `${VAR}` stands for, before start-up interpolates it. */
const PLACEHOLDER_PATTERN = '\\$\\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\\}'

type JsonSchema = Record<string, unknown> & {
  type?: string | string[]
  properties?: Record<string, JsonSchema>
  items?: JsonSchema
  anyOf?: JsonSchema[]
  const?: unknown
  enum?: unknown[]
  pattern?: string
  default?: unknown
  description?: string
}

/**
 * The editor sees the file before interpolation, so wherever a value that is not free text is
 * expected (a number, a boolean, a duration, one of a list), `${VAR}` / `${VAR:-default}` is
 * accepted too.
 */
function allowPlaceholders (node: JsonSchema): void {
  if (node.type === 'string' && (node.enum !== undefined || node.pattern !== undefined)) {
    // The annotations (description, default) stay on the key; the value's shape becomes one branch.
    const { description, default: fallback, ...exact } = node
    for (const key of Object.keys(exact)) delete node[key]
    node.anyOf = [exact, { type: 'string', pattern: PLACEHOLDER_PATTERN }]
    if (description !== undefined) node.description = description
    if (fallback !== undefined) node.default = fallback
    return
  }
  for (const child of Object.values(node.properties ?? {})) allowPlaceholders(child)
  if (node.items !== undefined) allowPlaceholders(node.items)
  for (const branch of node.anyOf ?? []) allowPlaceholders(branch)
}

export function buildConfigJsonSchema (): JsonSchema {
  const schema = z.toJSONSchema(gatewayConfigSchema, { io: 'input', target: 'draft-2020-12' }) as JsonSchema
  allowPlaceholders(schema)
  return {
    $schema: schema.$schema,
    title: 'mcp-session-gateway configuration',
    description: 'One YAML file configures one gateway. Any string may use ${VAR} or ${VAR:-default} from the environment. Durations are written 500ms, 90s, 30m or 24h. Generated from src/config/config-schema.ts by `npm run config:schema`.',
    ...Object.fromEntries(Object.entries(schema).filter(([key]) => key !== '$schema'))
  }
}

export function renderSchemaFile (): string {
  return `${JSON.stringify(buildConfigJsonSchema(), null, 2)}\n`
}

/** The branches that say what the key is, without the `${VAR}` and `null` alternatives. */
function meaningfulBranches (node: JsonSchema): JsonSchema[] {
  if (node.anyOf === undefined) return [node]
  return node.anyOf
    .filter((branch) => branch.type !== 'null' && branch.pattern !== PLACEHOLDER_PATTERN)
    .flatMap(meaningfulBranches)
}

function typeLabel (node: JsonSchema): string {
  const labels = meaningfulBranches(node).map((branch) => {
    if (branch.const !== undefined) return `\`${String(branch.const)}\``
    if (branch.enum !== undefined) return branch.enum.map((value) => `\`${String(value)}\``).join(' \\| ')
    if (branch.type === 'array') return `list of ${branch.items === undefined ? 'values' : typeLabel(branch.items)}`
    if (branch.type === 'object') return 'mapping'
    if (branch.type === 'string' && branch.pattern !== undefined && branch.pattern.includes('ms|s|m|h')) return 'duration'
    if (branch.type === 'integer') {
      const range = branch.minimum !== undefined && branch.maximum !== undefined ? ` ${String(branch.minimum)}–${String(branch.maximum)}` : ''
      return `integer${range}`
    }
    if (branch.type === 'number' && branch.minimum !== undefined) return `number ${String(branch.minimum)}–${String(branch.maximum)}`
    const types = Array.isArray(branch.type) ? (branch.type as string[]).filter((type) => type !== 'null') : [branch.type ?? 'any']
    return types.join(' or ')
  })
  // A number also accepted as the digits `${PORT}` interpolates to, or a boolean as "true": one label.
  const unique = [...new Set(labels)].filter((label, _, all) =>
    !(label === 'string' && all.length > 1) && !(label === '`true` \\| `false`' && all.includes('boolean')))
  return unique.join(' or ')
}

interface ReferenceRow { key: string, type: string, default: string, description: string }

function objectBranch (node: JsonSchema): JsonSchema | undefined {
  return meaningfulBranches(node).find((branch) => branch.type === 'object' && branch.properties !== undefined)
}

function collectRows (node: JsonSchema, prefix: string, required: readonly string[], rows: ReferenceRow[]): void {
  for (const [name, child] of Object.entries(node.properties ?? {})) {
    const key = prefix === '' ? name : `${prefix}.${name}`
    const fallback = child.default === undefined
      ? required.includes(name) ? 'required' : '—'
      : `\`${typeof child.default === 'string' ? child.default : JSON.stringify(child.default)}\``
    rows.push({ key, type: typeLabel(child), default: fallback, description: child.description ?? '' })
    const nested = objectBranch(child)
    if (nested !== undefined) collectRows(nested, key, (nested.required as string[] | undefined) ?? [], rows)
    const items = meaningfulBranches(child).find((branch) => branch.type === 'array')?.items
    const itemObject = items === undefined ? undefined : objectBranch(items)
    if (itemObject !== undefined) collectRows(itemObject, `${key}[]`, (itemObject.required as string[] | undefined) ?? [], rows)
  }
}

/** Every key of the definition, in the order of the definition. */
export function configReferenceRows (): ReferenceRow[] {
  const schema = buildConfigJsonSchema()
  const rows: ReferenceRow[] = []
  collectRows(schema, '', (schema.required as string[] | undefined) ?? [], rows)
  return rows
}

export function renderReference (): string {
  const escape = (text: string): string => text.replace(/\|/g, '\\|').replace(/\n/g, ' ')
  const lines = [
    REFERENCE_BEGIN,
    '',
    '| key | type | default | meaning |',
    '| --- | --- | --- | --- |',
    ...configReferenceRows().map((row) => `| \`${row.key}\` | ${row.type} | ${row.default} | ${escape(row.description)} |`),
    '',
    REFERENCE_END
  ]
  return lines.join('\n')
}

/** The doc with its generated block replaced; the prose around it is written by hand. */
export function renderDoc (currentDoc: string): string {
  const begin = currentDoc.indexOf(REFERENCE_BEGIN)
  const end = currentDoc.indexOf(REFERENCE_END)
  if (begin === -1 || end === -1) throw new Error(`${DOC_FILE} lacks the ${REFERENCE_BEGIN} … ${REFERENCE_END} markers`)
  return currentDoc.slice(0, begin) + renderReference() + currentDoc.slice(end + REFERENCE_END.length)
}

function main (): void {
  writeFileSync(SCHEMA_FILE, renderSchemaFile())
  writeFileSync(DOC_FILE, renderDoc(readFileSync(DOC_FILE, 'utf8')))
  process.stdout.write(`wrote ${SCHEMA_FILE} and the reference in ${DOC_FILE}\n`)
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) main()
