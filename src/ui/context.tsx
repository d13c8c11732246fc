// React access to the store and the worker client. Panels read state through `useWorkbench`
// with a selector and send commands through `useWorkerClient`.

import { createContext, useContext } from 'react';
import { useStore } from 'zustand';
import type { WorkbenchState, WorkbenchStore } from './store.ts';
import type { WorkerClient } from './workerClient.ts';

export interface Workbench {
  store: WorkbenchStore;
  client: WorkerClient;
}

export const WorkbenchContext = createContext<Workbench | null>(null);

function useWorkbenchContext(): Workbench {
  const workbench = useContext(WorkbenchContext);
  if (!workbench) throw new Error('Workbench components must be rendered inside WorkbenchContext.Provider.');
  return workbench;
}

export function useWorkbench<T>(selector: (state: WorkbenchState) => T): T {
  return useStore(useWorkbenchContext().store, selector);
}

export function useWorkerClient(): WorkerClient {
  return useWorkbenchContext().client;
}

export function useWorkbenchStore(): WorkbenchStore {
  return useWorkbenchContext().store;
}
