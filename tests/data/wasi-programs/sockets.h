/* SOCKET_CALL(label, call): E(label, call) for a socket call, or nothing in a build for a component, whose WASI
   adapter traps in sock_accept, sock_recv and sock_send (docs/components.md): test_wasi_programs_component.py builds
   edges.c and paths.c with -DADAPTER_TRAPPING_CALLS_LEFT_OUT. */
#ifdef ADAPTER_TRAPPING_CALLS_LEFT_OUT
#define SOCKET_CALL(label, call) ((void)0)
#else
#define SOCKET_CALL(label, call) E(label, call)
#endif
