//! Which live (non-final) instances each worker holds and what they ask for together, kept
//! current as instances are placed and end. A worker's report then costs what it lists, and a
//! reconcile pass reads each worker's load instead of scanning every instance.

use std::collections::{BTreeSet, HashMap};

use crate::model::{InstanceId, Resources, ServiceName, WorkerId};

/// The live instances on one worker.
#[derive(Debug, Default)]
pub(crate) struct WorkerLoad {
    /// (service, instance) of each.
    pub instances: BTreeSet<(ServiceName, InstanceId)>,
    /// What they ask for, together.
    pub allocated: Resources,
}

/// Live instances by worker.
#[derive(Debug, Default)]
pub(crate) struct Placements {
    by_worker: HashMap<WorkerId, WorkerLoad>,
    /// Where each indexed instance is, and what it was counted with.
    at: HashMap<InstanceId, (ServiceName, WorkerId, Resources)>,
}

/// Nothing allocated.
const NOTHING: Resources = Resources {
    cpus: 0.0,
    memory_mb: 0,
};

impl Placements {
    /// Records where instance `id` of `service` is: on a worker asking for some resources,
    /// or (`None`) nowhere that counts (not placed, or final).
    pub fn set(
        &mut self,
        service: &ServiceName,
        id: InstanceId,
        placement: Option<(&WorkerId, Resources)>,
    ) {
        if let (Some((_, worker, _)), Some((placed_on, _))) = (self.at.get(&id), placement)
            && worker == placed_on
        {
            return;
        }
        if let Some((service, worker, resources)) = self.at.remove(&id)
            && let Some(load) = self.by_worker.get_mut(&worker)
        {
            load.instances.remove(&(service, id));
            if load.instances.is_empty() {
                self.by_worker.remove(&worker);
            } else {
                load.allocated.cpus -= resources.cpus;
                load.allocated.memory_mb =
                    load.allocated.memory_mb.saturating_sub(resources.memory_mb);
            }
        }
        if let Some((worker, resources)) = placement {
            let load = self
                .by_worker
                .entry(worker.clone())
                .or_insert_with(|| WorkerLoad {
                    instances: BTreeSet::new(),
                    allocated: NOTHING,
                });
            load.instances.insert((service.clone(), id));
            load.allocated.cpus += resources.cpus;
            load.allocated.memory_mb = load.allocated.memory_mb.saturating_add(resources.memory_mb);
            self.at
                .insert(id, (service.clone(), worker.clone(), resources));
        }
    }

    /// The live instances on `worker`.
    pub fn on(&self, worker: &WorkerId) -> impl Iterator<Item = &(ServiceName, InstanceId)> {
        self.by_worker
            .get(worker)
            .into_iter()
            .flat_map(|load| load.instances.iter())
    }

    /// How many live instances `worker` holds.
    pub fn count(&self, worker: &WorkerId) -> u32 {
        self.by_worker
            .get(worker)
            .map_or(0, |load| load.instances.len() as u32)
    }

    /// What the live instances on `worker` ask for, together.
    pub fn allocated(&self, worker: &WorkerId) -> Resources {
        self.by_worker
            .get(worker)
            .map_or(NOTHING, |load| load.allocated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resources(cpus: f64, memory_mb: u64) -> Resources {
        Resources { cpus, memory_mb }
    }

    #[test]
    fn instances_move_between_workers_and_leave_nothing_behind() {
        let (web, api): (ServiceName, ServiceName) =
            ("web".parse().unwrap(), "api".parse().unwrap());
        let (a, b): (WorkerId, WorkerId) = ("a".parse().unwrap(), "b".parse().unwrap());
        let (one, two, three) = (InstanceId::new(), InstanceId::new(), InstanceId::new());
        let mut placements = Placements::default();
        placements.set(&web, one, Some((&a, resources(0.5, 128))));
        placements.set(&web, two, Some((&a, resources(0.5, 128))));
        placements.set(&api, three, Some((&b, resources(1.0, 256))));
        // Indexing again at the same place counts once.
        placements.set(&web, one, Some((&a, resources(0.5, 128))));
        assert_eq!(placements.count(&a), 2);
        assert_eq!(placements.allocated(&a), resources(1.0, 256));
        assert_eq!(
            placements.on(&b).collect::<Vec<_>>(),
            [&(api.clone(), three)]
        );

        placements.set(&web, two, Some((&b, resources(0.5, 128))));
        assert_eq!(placements.count(&a), 1);
        assert_eq!(placements.allocated(&a), resources(0.5, 128));
        assert_eq!(placements.allocated(&b), resources(1.5, 384));

        for id in [one, two] {
            placements.set(&web, id, None);
        }
        placements.set(&api, three, None);
        assert_eq!(placements.count(&a) + placements.count(&b), 0);
        assert_eq!(placements.allocated(&b), NOTHING);
        assert!(placements.by_worker.is_empty() && placements.at.is_empty());
    }
}
