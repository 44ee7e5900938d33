// `flatwall run`'s management API options: validated into ApiServerOptions
// (usage errors exit 2 before anything starts), then the server.
import { readFileSync } from 'node:fs';
import { ApiServer, DEFAULT_SOCKET, parseListen } from '../control/api';
import type { Firewall } from '../control/firewall';
import { firewallRoutes } from '../control/routes';
import { parseRuleMetrics, type RuleMetricsMode } from '../control/metrics';
import { log } from '../control/log';
import { UsageError } from './args';
import { errnoText } from '../rules/load';

export const API_HELP = `      --api-socket PATH   management API on this Unix socket, mode 0600
                          (default ${DEFAULT_SOCKET}; "off" for none)
      --api-listen A:P    also serve the API on TCP ADDR:PORT ([v6]:PORT);
                          requires --api-token-file
      --api-token-file F  bearer token for the TCP listener (first line of F)
      --api-open-probes   serve GET /health and /ready on TCP without the token
                          (Kubernetes httpGet probes); every other path still needs it
      --metrics-rules M   per-rule series in /metrics: none (default), top:K, all
`;

export const API_OPTIONS = {
  'api-socket': { type: 'string' },
  'api-listen': { type: 'string' },
  'api-token-file': { type: 'string' },
  'api-open-probes': { type: 'boolean' },
  'metrics-rules': { type: 'string' },
} as const;

export interface ApiHandle {
  where: string[];
  close(): Promise<void>;
}

export interface ApiConfig {
  socket?: string;
  listen?: string;
  token?: string;
  openProbes: boolean;
  ruleMetrics: RuleMetricsMode;
}

export function apiConfig(values: Record<string, unknown>): ApiConfig {
  const sock = values['api-socket'] as string | undefined;
  const listen = values['api-listen'] as string | undefined;
  const tokenFile = values['api-token-file'] as string | undefined;
  let ruleMetrics: RuleMetricsMode;
  try {
    ruleMetrics = parseRuleMetrics(values['metrics-rules'] as string | undefined);
    if (listen) parseListen(listen);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (listen && !tokenFile) throw new UsageError('--api-listen requires --api-token-file (a TCP listener without a token is refused)');
  let token: string | undefined;
  if (tokenFile) {
    try {
      token = readFileSync(tokenFile, 'utf8').split('\n')[0].trim();
    } catch (err) {
      throw new UsageError(`cannot read --api-token-file ${tokenFile}: ${errnoText(err as NodeJS.ErrnoException)}`);
    }
    if (token.length < 16) throw new UsageError(`the token in ${tokenFile} is too short (at least 16 characters)`);
  }
  const openProbes = values['api-open-probes'] === true;
  if (openProbes && !listen) throw new UsageError('--api-open-probes needs --api-listen (the Unix socket needs no token)');
  return { socket: sock === 'off' ? undefined : sock ?? DEFAULT_SOCKET, listen, token, openProbes, ruleMetrics };
}

export async function startApi(fw: Firewall, c: ApiConfig): Promise<ApiHandle | undefined> {
  if (!c.socket && !c.listen) return undefined;
  const server = new ApiServer(firewallRoutes(fw, { ruleMetrics: c.ruleMetrics }), { socket: c.socket, listen: c.listen, token: c.token, openProbes: c.openProbes });
  await server.start();
  const where = [...(c.socket ? [`unix:${c.socket}`] : []), ...(server.tcpAddress ? [`tcp:${server.tcpAddress.host}:${server.tcpAddress.port}`] : [])];
  log('info', 'api listening', { on: where });
  return { where, close: () => server.close() };
}
