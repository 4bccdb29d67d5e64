// Navigation requests from pages to the router in main.ts (an event keeps the import graph acyclic).

export const NAVIGATE_EVENT = 'stride:navigate';

/** Goes to an in-app path such as `/jobs/abc` without reloading. */
export function go(to: string): void {
  window.dispatchEvent(new CustomEvent(NAVIGATE_EVENT, { detail: to }));
}
