import t, { type Test } from 'tap'
import { execFile } from 'node:child_process'
import { readFile, stat } from 'node:fs/promises'
import { basename, join, posix } from 'node:path'
import { promisify } from 'node:util'
import { parse as parseYaml, parseAllDocuments } from 'yaml'
import { ConfigMap, Secret, Service, type IContainer, type IPodSpec } from 'kubernetes-models/v1'
import { Deployment } from 'kubernetes-models/apps/v1'
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1'
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2'
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1'
import { resolveConfig } from '../src/config/load-config.js'
import type { GatewayConfig } from '../src/config/validate-config.js'

/*
 * deploy/kubernetes (docs/operating.md, "Kubernetes"): every object is checked against the
 * Kubernetes schemas (kubernetes-models, and its prometheus-operator twin for the ServiceMonitor),
 * the embedded gateway YAML against the gateway's own validator, and the facts that span objects
 * (grace periods, probes, ports, the config path, the Secret's variables) are asserted.
 *
 * The manifests are read twice: from their files by a small reader of the kustomize features they
 * use (so the test runs without kubectl), and as `kubectl kustomize` renders them when kubectl is on
 * PATH. A test holds the two equal, so the reader cannot drift from what kubectl applies.
 */

const BASE = 'deploy/kubernetes'
const OVERLAY = 'deploy/kubernetes/overlays/prometheus-operator'
const SECRET_EXAMPLE = 'deploy/kubernetes/secret.example.yaml'
/** The official Node images create their `node` user with this uid. */
const NODE_IMAGE_USER_IDS: Record<string, number> = { node: 1000 }
const TEST_NAMESPACE = 'gateway-test'

interface KubernetesObject {
  apiVersion: string
  kind: string
  metadata: { name: string, labels?: Record<string, string> }
  [field: string]: unknown
}

/** A model class; its constructor takes the unchecked object, which `validate()` then checks. */
type SchemaModel = new (data: never) => { validate (): void }
const schemaModels: Record<string, SchemaModel> = {
  'apps/v1 Deployment': Deployment,
  'v1 Service': Service,
  'v1 ConfigMap': ConfigMap,
  'v1 Secret': Secret,
  'policy/v1 PodDisruptionBudget': PodDisruptionBudget,
  'autoscaling/v2 HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'monitoring.coreos.com/v1 ServiceMonitor': ServiceMonitor
}

const execFileAsync = promisify(execFile)

async function findKubectl (): Promise<string | null> {
  try {
    const { stdout } = await execFileAsync('kubectl', ['version', '--client', '-o', 'json'], { timeout: 30_000 })
    const version = JSON.parse(stdout) as { clientVersion?: { gitVersion?: string } }
    return version.clientVersion?.gitVersion ?? 'unknown version'
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw error
  }
}

const kubectl = await findKubectl()
const withoutKubectl = kubectl === null ? 'kubectl is not on PATH: the kustomize rendering is not checked (the files are)' : false

async function kustomizeBuild (dir: string): Promise<KubernetesObject[]> {
  const { stdout } = await execFileAsync('kubectl', ['kustomize', dir], { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 })
  return parseObjects(stdout, `kubectl kustomize ${dir}`)
}

function parseObjects (text: string, source: string): KubernetesObject[] {
  return parseAllDocuments(text).map((document) => {
    if (document.errors.length > 0) throw new Error(`${source}: ${document.errors[0]?.message ?? ''}`)
    return document.toJS() as KubernetesObject
  }).filter((object) => object !== null)
}

/**
 * What `kubectl kustomize DIR` renders, for the features these kustomizations use: resources (files
 * and directories) and configMapGenerator files, without the hash suffix. Anything else is refused,
 * so a new feature cannot be silently ignored here.
 */
async function readKustomization (dir: string): Promise<KubernetesObject[]> {
  const kustomization = parseYaml(await readFile(join(dir, 'kustomization.yaml'), 'utf8')) as {
    resources?: string[]
    configMapGenerator?: Array<{ name: string, files: string[] }>
  }
  const understood = new Set(['apiVersion', 'kind', 'resources', 'configMapGenerator'])
  for (const key of Object.keys(kustomization)) {
    if (!understood.has(key)) throw new Error(`${dir}/kustomization.yaml: ${key} is not understood by this reader`)
  }
  const objects: KubernetesObject[] = []
  for (const resource of kustomization.resources ?? []) {
    const path = join(dir, resource)
    if ((await stat(path)).isDirectory()) objects.push(...await readKustomization(path))
    else objects.push(...parseObjects(await readFile(path, 'utf8'), path))
  }
  for (const generator of kustomization.configMapGenerator ?? []) {
    const data: Record<string, string> = {}
    for (const file of generator.files) data[basename(file)] = await readFile(join(dir, file), 'utf8')
    objects.push({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: generator.name }, data })
  }
  return objects
}

function only<T> (objects: KubernetesObject[], kind: string, Model: new (data: never) => T): T {
  const found = objects.filter((object) => object.kind === kind)
  if (found.length !== 1) throw new Error(`expected one ${kind}, found ${found.length}`)
  return new Model(found[0] as never)
}

function matches (selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean {
  return selector !== undefined && Object.keys(selector).length > 0 &&
    Object.entries(selector).every(([key, value]) => labels?.[key] === value)
}

/** A Service's or probe's port, by number or by the container port's name. */
function containerPortNumber (container: IContainer, port: number | string | undefined): number | undefined {
  if (typeof port === 'number') return port
  return container.ports?.find((candidate) => candidate.name === port)?.containerPort
}

/** The environment the container gets, with a stand-in for each Secret key and downward-API field. */
function containerEnvironment (container: IContainer, options: { withOptionalSecrets: boolean }): Record<string, string> {
  const env: Record<string, string> = {}
  for (const variable of container.env ?? []) {
    if (variable.value !== undefined) env[variable.name] = variable.value
    else if (variable.valueFrom?.fieldRef?.fieldPath === 'metadata.namespace') env[variable.name] = TEST_NAMESPACE
    else if (variable.valueFrom?.secretKeyRef !== undefined) {
      if (variable.valueFrom.secretKeyRef.optional === true && !options.withOptionalSecrets) continue
      env[variable.name] = `stand-in-for-${variable.name.toLowerCase()}-at-least-32-bytes`
    } else throw new Error(`env ${variable.name}: no stand-in for this source`)
  }
  return env
}

function preStopPauseSeconds (container: IContainer): number {
  const preStop = container.lifecycle?.preStop
  if (preStop?.sleep !== undefined) return preStop.sleep.seconds
  const command = preStop?.exec?.command ?? []
  if (command[0] === 'sleep' && command.length === 2) return Number(command[1])
  throw new Error('the preStop hook is not a pause (sleep)')
}

interface Dockerfile { configPath: string, user: string }

async function readDockerfile (): Promise<Dockerfile> {
  const text = await readFile('Dockerfile', 'utf8')
  const runtime = text.slice(text.search(/^FROM \S+ AS runtime$/m))
  const configPath = /MCP_GATEWAY_CONFIG=(\S+)/.exec(runtime)?.[1]
  const user = [...runtime.matchAll(/^USER (\S+)$/gm)].at(-1)?.[1]
  if (configPath === undefined || user === undefined) throw new Error('Dockerfile: runtime stage without MCP_GATEWAY_CONFIG or USER')
  return { configPath, user }
}

/** The base's objects, typed, with the gateway container and its resolved configuration. */
function gatewayParts (objects: KubernetesObject[]) {
  const deployment = only(objects, 'Deployment', Deployment)
  const pod = deployment.spec?.template.spec as IPodSpec
  const container = pod.containers[0] as IContainer
  const configMap = only(objects, 'ConfigMap', ConfigMap)
  const configText = configMap.data?.['gateway.yaml']
  if (configText === undefined) throw new Error('the ConfigMap has no gateway.yaml')
  const config: GatewayConfig = resolveConfig(configText, containerEnvironment(container, { withOptionalSecrets: true }))
  return { deployment, pod, container, configMap, configText, config, service: only(objects, 'Service', Service) }
}

function checkSchemas (t: Test, objects: KubernetesObject[]): void {
  for (const object of objects) {
    const Model = schemaModels[`${object.apiVersion} ${object.kind}`]
    if (Model === undefined) {
      t.fail(`${object.apiVersion} ${object.kind} ${object.metadata.name}: no schema to check it against`)
      continue
    }
    t.doesNotThrow(() => { new Model(object as never).validate() }, `${object.kind} ${object.metadata.name} matches the Kubernetes schema`)
  }
}

async function checkBase (t: Test, objects: KubernetesObject[]): Promise<void> {
  checkSchemas(t, objects)
  t.same(objects.map((object) => object.kind).sort(),
    ['ConfigMap', 'Deployment', 'HorizontalPodAutoscaler', 'PodDisruptionBudget', 'Service'], 'the base holds its five objects and no Secret')

  const { deployment, pod, container, configMap, configText, config, service } = gatewayParts(objects)
  const podLabels = deployment.spec?.template.metadata?.labels
  t.ok(matches(deployment.spec?.selector.matchLabels, podLabels), 'the Deployment selects its own pods')

  t.test('the embedded configuration passes the gateway\'s validator', async (t) => {
    t.equal(config.listen.host, '0.0.0.0')
    t.ok(config.redis !== null, 'sessions live in Redis, shared by every replica')
    t.not(config.listen.trustProxy, false, 'X-Forwarded-For from the ingress is believed')
    t.ok(config.metrics.enabled && config.metrics.port !== null, 'metrics on a port of their own')
    const allowedHosts = config.security.allowedHosts ?? []
    for (const name of [service.metadata?.name, `${service.metadata?.name}.${TEST_NAMESPACE}.svc.cluster.local`]) {
      t.ok(allowedHosts.includes(name as string), `security.allowedHosts holds ${name}`)
    }
    t.doesNotThrow(() => resolveConfig(configText, containerEnvironment(container, { withOptionalSecrets: false })),
      'every ${VAR} without a default comes from a non-optional source (an optional Secret key may be absent)')
    t.throws(() => resolveConfig(configText, {}), { message: /environment variable \w+ is not set/ },
      'without the Deployment\'s environment the configuration is refused')
    t.notMatch(configText, /^\s*(?:password|secret|token):\s*(?!\$\{)\S/m, 'no secret is written into the ConfigMap')
  })

  t.test('the Secret\'s variables', async (t) => {
    const example = parseObjects(await readFile(SECRET_EXAMPLE, 'utf8'), SECRET_EXAMPLE)
    checkSchemas(t, example)
    const secret = only(example, 'Secret', Secret)
    const provided = Object.keys({ ...secret.data, ...secret.stringData })
    const referenced = (container.env ?? []).flatMap((variable) => variable.valueFrom?.secretKeyRef ?? [])
    t.ok(referenced.length >= 3, 'the Redis password, the JWT secret and the admin token come from the Secret')
    for (const reference of referenced) {
      t.equal(reference.name, secret.metadata?.name, `${reference.key} is read from the example's Secret`)
      t.ok(provided.includes(reference.key), `secret.example.yaml carries ${reference.key}`)
    }
    for (const value of Object.values(secret.stringData ?? {})) t.match(value, /replace-me/, 'the example holds placeholders only')
    t.notOk(container.envFrom, 'each variable is named, none comes in wholesale')
  })

  t.test('graceful shutdown outlasts the pause and the drain', async (t) => {
    const pause = preStopPauseSeconds(container)
    t.ok(pause > 0, 'a preStop pause before SIGTERM')
    t.not(config.shutdownGrace, 30_000, 'shutdownGrace is set explicitly, not left at its default')
    t.ok((pod.terminationGracePeriodSeconds ?? 30) * 1000 > config.shutdownGrace + pause * 1000,
      `terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} > shutdownGrace ${config.shutdownGrace / 1000}s + pause ${pause}s`)
  })

  t.test('probes and ports', async (t) => {
    t.equal(containerPortNumber(container, 'http'), config.listen.port, 'the container port named http is listen.port')
    t.equal(containerPortNumber(container, 'metrics'), config.metrics.port, 'the container port named metrics is metrics.port')
    const probes = { readinessProbe: '/readyz', livenessProbe: '/healthz', startupProbe: '/healthz' } as const
    for (const [probe, path] of Object.entries(probes) as Array<[keyof typeof probes, string]>) {
      const httpGet = container[probe]?.httpGet
      t.equal(httpGet?.path, path, `${probe} asks ${path}`)
      t.equal(containerPortNumber(container, httpGet?.port), config.listen.port, `${probe} asks the listen port`)
    }
    t.ok((container.livenessProbe?.periodSeconds ?? 10) * (container.livenessProbe?.failureThreshold ?? 3) > config.shutdownGrace / 1000,
      'liveness does not give up on a replica while it drains')

    t.equal(service.spec?.type, 'ClusterIP')
    t.ok(matches(service.spec?.selector, podLabels), 'the Service selects the gateway pods')
    const http = service.spec?.ports?.find((port) => port.name === 'http')
    t.equal(http?.port, 80, 'the Service answers on port 80, named http')
    t.equal(containerPortNumber(container, http?.targetPort), config.listen.port, 'and targets the listen port')
    const metrics = service.spec?.ports?.find((port) => port.name === 'metrics')
    t.equal(containerPortNumber(container, metrics?.targetPort), config.metrics.port, 'the metrics Service port targets metrics.port')
  })

  t.test('the configuration file is where the gateway looks', async (t) => {
    const dockerfile = await readDockerfile()
    const configEnv = container.env?.find((variable) => variable.name === 'MCP_GATEWAY_CONFIG')?.value
    t.equal(configEnv, dockerfile.configPath, 'MCP_GATEWAY_CONFIG is the Dockerfile\'s')
    const volume = pod.volumes?.find((candidate) => candidate.configMap?.name === configMap.metadata?.name)
    t.ok(volume, 'a volume holds the ConfigMap')
    t.notOk(volume?.configMap?.items, 'its keys are the file names')
    const mount = container.volumeMounts?.find((candidate) => candidate.name === volume?.name)
    t.equal(mount?.readOnly, true, 'mounted read-only')
    t.notOk(mount?.subPath, 'mounted as a directory, so an edited ConfigMap reaches the pod')
    t.equal(posix.join(mount?.mountPath ?? '', 'gateway.yaml'), dockerfile.configPath, 'gateway.yaml lands at MCP_GATEWAY_CONFIG')
  })

  t.test('the pod runs locked down', async (t) => {
    const dockerfile = await readDockerfile()
    const security = container.securityContext
    const podSecurity = pod.securityContext
    t.equal(security?.runAsNonRoot ?? podSecurity?.runAsNonRoot, true, 'runAsNonRoot')
    t.equal(security?.runAsUser ?? podSecurity?.runAsUser, NODE_IMAGE_USER_IDS[dockerfile.user], `runAsUser is the uid of the image's USER ${dockerfile.user}`)
    t.equal(security?.readOnlyRootFilesystem, true, 'readOnlyRootFilesystem')
    t.equal(security?.allowPrivilegeEscalation, false, 'allowPrivilegeEscalation false')
    t.same(security?.capabilities?.drop, ['ALL'], 'every capability dropped')
    t.equal((security?.seccompProfile ?? podSecurity?.seccompProfile)?.type, 'RuntimeDefault', 'seccomp RuntimeDefault')
    t.equal(pod.automountServiceAccountToken, false, 'no Kubernetes API token in the pod')
    for (const kind of ['requests', 'limits'] as const) {
      t.ok(container.resources?.[kind]?.cpu !== undefined && container.resources[kind]?.memory !== undefined, `cpu and memory ${kind}`)
    }
  })

  t.test('replicas, spread, rollout, disruptions and autoscaling', async (t) => {
    t.equal(deployment.spec?.replicas, undefined, 'the autoscaler owns the replica count')
    t.same(deployment.spec?.strategy?.rollingUpdate, { maxUnavailable: 0, maxSurge: 1 }, 'a rollout never runs below capacity')
    const spread = pod.topologySpreadConstraints?.find((constraint) => constraint.topologyKey === 'kubernetes.io/hostname')
    t.ok(spread !== undefined && matches(spread.labelSelector?.matchLabels, podLabels), 'replicas spread across nodes')

    const budget = only(objects, 'PodDisruptionBudget', PodDisruptionBudget)
    t.ok(matches(budget.spec?.selector?.matchLabels, podLabels), 'the budget covers the gateway pods')
    t.ok(budget.spec?.maxUnavailable === 1 || budget.spec?.minAvailable === 2, 'one voluntary disruption at a time')

    const autoscaler = only(objects, 'HorizontalPodAutoscaler', HorizontalPodAutoscaler)
    t.same(autoscaler.spec?.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: deployment.metadata?.name }, 'the autoscaler scales the gateway Deployment')
    t.equal(autoscaler.spec?.minReplicas, 3, 'at least three replicas')
    t.ok((autoscaler.spec?.maxReplicas ?? 0) > 3, 'room to grow')
    const cpu = autoscaler.spec?.metrics?.find((metric) => metric.resource?.name === 'cpu')
    t.equal(cpu?.resource?.target.type, 'Utilization', 'scaled on CPU utilization, relative to the cpu request')
  })
}

t.test('the base, read from its files', async (t) => {
  await checkBase(t, await readKustomization(BASE))
})

t.test('the prometheus-operator overlay, read from its files', async (t) => {
  await checkOverlay(t, await readKustomization(OVERLAY))
})

t.test('the base, rendered by kubectl kustomize', { skip: withoutKubectl }, async (t) => {
  t.comment(`kubectl ${kubectl}`)
  await checkBase(t, await kustomizeBuild(BASE))
})

t.test('the prometheus-operator overlay, rendered by kubectl kustomize', { skip: withoutKubectl }, async (t) => {
  await checkOverlay(t, await kustomizeBuild(OVERLAY))
})

t.test('kubectl kustomize renders exactly what the file reader reads', { skip: withoutKubectl }, async (t) => {
  for (const dir of [BASE, OVERLAY]) {
    const rendered = await kustomizeBuild(dir)
    const hashed = rendered.find((object) => object.kind === 'ConfigMap')?.metadata.name ?? ''
    t.match(hashed, /^mcp-session-gateway-config-[a-z0-9]{10}$/, 'the ConfigMap\'s name carries its hash, so a new configuration rolls the pods')
    const unhashed = JSON.parse(JSON.stringify(rendered).replaceAll(hashed, 'mcp-session-gateway-config')) as KubernetesObject[]
    t.same(sortObjects(unhashed), sortObjects(await readKustomization(dir)), dir)
  }
})

function sortObjects (objects: KubernetesObject[]): KubernetesObject[] {
  return [...objects].sort((a, b) => `${a.kind}/${a.metadata.name}`.localeCompare(`${b.kind}/${b.metadata.name}`))
}

async function checkOverlay (t: Test, objects: KubernetesObject[]): Promise<void> {
  checkSchemas(t, objects)
  const monitor = only(objects, 'ServiceMonitor', ServiceMonitor)
  const { service, config } = gatewayParts(objects)
  t.ok(matches(monitor.spec.selector.matchLabels, service.metadata?.labels), 'the ServiceMonitor selects the gateway Service')
  const endpoint = monitor.spec.endpoints?.[0]
  const servicePort = service.spec?.ports?.find((port) => port.name === endpoint?.port)
  t.equal(servicePort?.name, 'metrics', 'it scrapes the Service port named metrics')
  t.equal(servicePort?.targetPort, 'metrics', 'which is the container\'s metrics port')
  t.equal(endpoint?.path, config.metrics.path, 'at metrics.path')
}
