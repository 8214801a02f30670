// The outage tests use the chaos driver's proxy: cut() every connection, restore() them.
export { ChaosProxy as TcpProxy } from '../../chaos/tcp-proxy.js';
