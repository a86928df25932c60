import t from 'tap'
import { readFile } from 'node:fs/promises'
import { parse as parseYaml } from 'yaml'
import { Ajv2020 } from 'ajv/dist/2020.js'
import {
  DOC_FILE, SCHEMA_FILE, buildConfigJsonSchema, configReferenceRows, renderDoc, renderSchemaFile
} from '../scripts/generate-config-schema.js'

// The generated files are committed; these tests fail when the definition changed without
// `npm run config:schema`.

t.test('config/gateway.schema.json is generated from the definition', async (t) => {
  t.equal(await readFile(SCHEMA_FILE, 'utf8'), renderSchemaFile(), 'stale: run npm run config:schema')
})

t.test('the reference in docs/configuration.md is generated from the definition', async (t) => {
  const doc = await readFile(DOC_FILE, 'utf8')
  t.equal(doc, renderDoc(doc), 'stale: run npm run config:schema')
  for (const row of configReferenceRows()) {
    t.ok(doc.includes(`| \`${row.key}\` |`), `${row.key} is documented`)
    t.not(row.description, '', `${row.key} has a description`)
  }
})

t.test('every key with a default carries it in the JSON Schema', async (t) => {
  const rows = new Map(configReferenceRows().map((row) => [row.key, row.default]))
  const expected: Array<[string, string]> = [
    ['listen.port', '`8080`'], ['sessions.idleTimeout', '`30m`'], ['routes[].timeout', '`5m`'], ['tracing.sampleRatio', '`1`'],
    ['redis.waitTimeout', '`500ms`'], ['log.level', '`info`'], ['routes[].path', 'required']
  ]
  for (const [key, fallback] of expected) t.equal(rows.get(key), fallback, key)
})

t.test('config/gateway.yaml points editors at the schema and matches it as written', async (t) => {
  const text = await readFile('config/gateway.yaml', 'utf8')
  t.equal(text.split('\n')[0], '# yaml-language-server: $schema=./gateway.schema.json')
  const ajv = new Ajv2020({ strict: false, allErrors: true })
  const validate = ajv.compile(buildConfigJsonSchema())
  for (const file of ['config/gateway.yaml', 'config/demo.yaml']) {
    // Before interpolation, as an editor sees it: `${PORT:-8080}` must be accepted where a number goes.
    t.ok(validate(parseYaml(await readFile(file, 'utf8'))), `${file}: ${JSON.stringify(validate.errors)}`)
  }
  t.notOk(validate({ routes: [{ path: '/mcp', upstream: 'http://u/mcp', timout: '5m' }] }), 'a misspelt key is flagged in the editor')
  t.notOk(validate({ listen: { port: 'http' }, routes: [{ path: '/mcp', upstream: 'http://u/mcp' }] }), 'a word where a number goes is flagged')
})
