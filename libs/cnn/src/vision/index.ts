// Task heads beyond classification: boxes, IoU and NMS; YOLO detection; mAP; localization;
// segmentation. Losses are built from autograd ops; metrics are plain functions (no Node APIs).
export { boxArea, boxAt, boxIou, classAwareNms, labeledBoxesFromFlat, nonMaxSuppression, rankByScore } from './box.ts';
export type { Box, Detection, LabeledBox } from './box.ts';
export { narrow } from './narrow.ts';
export { YOLO_BOX_CHANNELS, decodeYolo, encodeYoloTargets, yoloLoss } from './yolo.ts';
export type { YoloDecodeOptions, YoloLossOptions, YoloTargets } from './yolo.ts';
export { averagePrecision, meanAveragePrecision } from './map.ts';
export type { ClassAp, MapOptions, MapResult } from './map.ts';
export { decodeLocalization, localizationCounts, localizationLoss, localizationMetrics } from './localization.ts';
export type { LocalizationCounts, LocalizationLossOptions, LocalizationMetrics } from './localization.ts';
export { segmentationConfusion, segmentationLoss, segmentationMetrics } from './segmentation.ts';
export type { SegmentationLossOptions, SegmentationMetrics } from './segmentation.ts';
